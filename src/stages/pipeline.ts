/**
 * A transfer is one stream through a list of named stages (pgBackRest's
 * filter group): compression, encryption, coalescing, checksums, sizes.
 * Stages that change the bytes are stream transforms; stages that only watch
 * them see every piece as it passes and, once the stream has ended, report
 * what they measured by name ('content-crc32', 'stored-size', ...). Nothing
 * is held whole in memory, and an error in any stage fails the whole stream,
 * and so its consumer.
 *
 * A transform stage that works in plain synchronous calls (a Step: coalescing,
 * zstd-napi's compression) shares one stream with the watchers and other such
 * stages next to it: each piece goes through the whole run in one call, not
 * one stream hop per stage.
 *
 * A source that reads into memory it reuses (a program's output read with
 * Node's `onread`: ReusedReads) feeds the run of watchers and Steps at the
 * front of the list in the read's own call, with no stream in between; what
 * comes out of that run still in the reused memory is copied.
 *
 * Two fast paths fuse a transform stage with an end of the stream: the first
 * stage after a file source may read the file itself (zstd through reused
 * buffers), and the last transform before a consumer, when only watchers
 * follow it, may hand its output straight to the consumer (zstd into reused
 * memory). The stages around them compose as usual.
 */
import { createReadStream } from 'node:fs';
import { pipeline, Readable, type Transform, Transform as TransformStream, type TransformCallback } from 'node:stream';
import { WalshipError } from '../errors.ts';
import type { ReusedReads } from '../util/socket-output.ts';

/** Whose bytes a result describes: the content itself, or its stored form (compressed, encrypted). */
export type ResultRole = 'content' | 'stored';
export type ResultName = `${ResultRole}-${'size' | 'crc32' | 'sha256'}`;
type ResultValue<Name extends ResultName> = Name extends `${string}-size` ? number : string;
/** What watch stages measured: '<role>-size' in bytes, '<role>-<algorithm>' in lowercase hex. */
export type StageResults = { [Name in ResultName]?: ResultValue<Name> };

/** A transform stage's work as plain synchronous calls; what each call returns is handed on at once, before the next call. */
export interface Step {
  /** The output for `input`, possibly none yet. `input` may be memory reused after the call: what the Step keeps past it, it copies. */
  write(input: Buffer): Buffer[];
  /** The rest of the output, once the input has ended. */
  end(): Buffer[];
}

/** A stage that changes the bytes: compression, encryption, coalescing. */
export interface TransformStage {
  readonly name: string;
  /** A new stream doing the stage's work. */
  transform(): Transform | Promise<Transform>;
  /** The same work as a new Step, where the stage has one; undefined when it has not (a stream stage then). */
  step?(): Step | undefined | Promise<Step | undefined>;
  /** The piece size that suits the stage when it is fed from a file. */
  readonly inputChunk?: number;
  /** Fused with a file source: the stage's output for the file, read its own faster way; undefined when it has none. */
  readFile?(path: string): Promise<Readable | undefined>;
  /**
   * Fused with the consumer: feeds the stage's output for `source` to `consume`
   * as views of reused memory; resolves false, having read nothing, when it has no faster way.
   */
  into?(source: AsyncIterable<Buffer>, consume: (piece: Buffer) => void): Promise<boolean>;
  /** The error to report when the stage's own stream fails with `error` (for example damaged input, named as such). */
  describeFailure?(error: unknown): Error;
}

/** A stage that only watches the bytes go by: checksums, sizes, verification. */
export interface WatchStage {
  readonly name: string;
  update(piece: Buffer): void;
  /** Called once, at the end of the stream: throws to fail it; returns what the stage measured. */
  finish(): StageResults | void;
}

export type Stage = TransformStage | WatchStage;

/** A file read from the start; a transform stage first in line may read it itself. */
export interface FileSource {
  file: string;
}

export type Source = Readable | FileSource | ReusedReads;

const READ_CHUNK = 1 << 18;

function isWatch(stage: Stage): stage is WatchStage {
  return 'update' in stage;
}

function isFileSource(source: Source): source is FileSource {
  return typeof (source as Partial<FileSource>).file === 'string';
}

function isReusedReads(source: Source): source is ReusedReads {
  return typeof (source as Partial<ReusedReads>).startReads === 'function';
}

/** One element of a run that shares a stream: a watcher, or a transform stage's Step. */
type Link = { watch: WatchStage } | { step: Step; stage?: TransformStage };

/** Runs a Step as a stream of its own (a stage used outside a pipeline's run). */
export function stepStream(step: Step): Transform {
  return new StepsTransform(new Run([{ step }], () => undefined, () => undefined));
}

/**
 * A run of watchers and Steps: each piece passes through them all in one
 * call, what comes out of the last going to `emit`. A failing Step is
 * reported to `failed` with its stage; the watchers' results, at the end, to `report`.
 */
class Run {
  private readonly links: Link[];
  private readonly report: (results: StageResults) => void;
  private readonly failed: (stage: TransformStage, error: unknown) => void;

  constructor(links: Link[], report: (results: StageResults) => void, failed: (stage: TransformStage, error: unknown) => void) {
    this.links = links;
    this.report = report;
    this.failed = failed;
  }

  write(piece: Buffer, emit: (output: Buffer) => void): void {
    this.feed(0, piece, emit);
  }

  end(emit: (output: Buffer) => void): void {
    this.links.forEach((link, index) => {
      if ('step' in link) for (const piece of this.call(link, () => link.step.end())) this.feed(index + 1, piece, emit);
    });
    this.report(finishAll(this.links.flatMap((link) => ('watch' in link ? [link.watch] : []))));
  }

  /** Passes `piece` through the links from `index` on, and what comes out of the last one to `emit`. */
  private feed(index: number, piece: Buffer, emit: (output: Buffer) => void): void {
    for (; index < this.links.length; index++) {
      const link = this.links[index]!;
      if ('watch' in link) {
        link.watch.update(piece);
        continue;
      }
      for (const output of this.call(link, () => link.step.write(piece))) this.feed(index + 1, output, emit);
      return;
    }
    emit(piece);
  }

  private call(link: { stage?: TransformStage }, work: () => Buffer[]): Buffer[] {
    try {
      return work();
    } catch (error) {
      if (link.stage) this.failed(link.stage, error);
      throw error;
    }
  }
}

/** A Run as one stream. */
class StepsTransform extends TransformStream {
  private readonly run: Run;
  private readonly pushOutput = (output: Buffer) => this.push(output);

  constructor(run: Run) {
    super();
    this.run = run;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.run.write(chunk, this.pushOutput);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.run.end(this.pushOutput);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/** Output held before the reads pause: a few of zstd's 256 KiB pieces, or of uncompressed reads. */
const REUSED_READS_BUFFER = 1 << 20;

/**
 * A Run fed by ReusedReads, in each read's own call, as a readable of the
 * Run's output. An output piece still in the reused memory (a piece no Step
 * changed) is copied before it is held; the reads pause while the reader is behind.
 */
class ReusedReadsStream extends Readable {
  private readonly source: ReusedReads;
  private readonly run: Run;
  private started = false;

  constructor(source: ReusedReads, run: Run) {
    super({ highWaterMark: REUSED_READS_BUFFER });
    this.source = source;
    this.run = run;
  }

  override _read(): void {
    if (this.started) return this.source.resumeReads();
    this.started = true;
    this.source.startReads(
      (piece) => this.feedRead(piece),
      (error) => (error ? this.destroy(error) : this.endOfReads()),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.source.destroy();
    callback(error);
  }

  private feedRead(piece: Buffer): boolean {
    if (this.destroyed) return false;
    let wantsMore = true;
    try {
      this.run.write(piece, (output) => {
        wantsMore = this.push(output.buffer === piece.buffer ? Buffer.from(output) : output);
      });
    } catch (error) {
      this.destroy(error as Error);
      return false;
    }
    return wantsMore;
  }

  private endOfReads(): void {
    if (this.destroyed) return;
    try {
      this.run.end((output) => this.push(output));
      this.push(null);
    } catch (error) {
      this.destroy(error as Error);
    }
  }
}

function finishAll(watchers: WatchStage[]): StageResults {
  return Object.assign({}, ...watchers.map((watcher) => watcher.finish() ?? {})) as StageResults;
}

/** One use: read the output once, by readable(), pieces() or drain(), then ask for results. */
export class Pipeline {
  private readonly source: Source;
  private readonly stages: readonly Stage[];
  private readonly measured: StageResults = {};
  private started = false;
  /** The first stream to fail, and how: streams that fail because another did come later. */
  private firstFailure: { stage: TransformStage | undefined; error: unknown } | undefined;

  constructor(source: Source, stages: readonly (Stage | undefined)[]) {
    this.source = source;
    this.stages = stages.filter((stage): stage is Stage => stage !== undefined);
  }

  /** The output as one stream, for a consumer that takes a Readable (storage.put). */
  async readable(): Promise<Readable> {
    this.start();
    return this.join(this.source, this.stages);
  }

  /** The output piece by piece; a failing stage's error is reported as the stage describes it. */
  async *pieces(): AsyncGenerator<Buffer> {
    const output = await this.readable();
    try {
      for await (const piece of output) yield piece as Buffer;
    } catch (error) {
      throw this.explain(error);
    }
  }

  /**
   * Hands the output to `consume`, piece by piece; a piece may be reused
   * memory, valid only during the call.
   */
  async drain(consume: (piece: Buffer) => void): Promise<void> {
    this.start();
    const at = this.stages.findLastIndex((stage) => !isWatch(stage));
    const last = this.stages[at];
    if (last && !isWatch(last) && last.into) {
      const upstream = await this.join(this.source, this.stages.slice(0, at));
      if (await this.fuse(last, upstream, this.stages.slice(at + 1) as WatchStage[], consume)) return;
      return this.consumeAll(await this.join(upstream, this.stages.slice(at)), consume);
    }
    return this.consumeAll(await this.join(this.source, this.stages), consume);
  }

  /** Everything the stages reported, once the stream has ended. */
  results(): StageResults {
    return { ...this.measured };
  }

  /** One result, by name; an internal error if no stage reported it. */
  result<Name extends ResultName>(name: Name): ResultValue<Name> {
    const value = this.measured[name];
    if (value === undefined) throw new WalshipError(`internal error: no stage reported ${name} (has the stream ended?)`);
    return value as ResultValue<Name>;
  }

  private start(): void {
    if (this.started) throw new WalshipError('internal error: a pipeline is read only once');
    this.started = true;
  }

  /** The last transform feeds the consumer itself, the watchers after it seeing each piece; false when it cannot. */
  private async fuse(last: TransformStage, upstream: Readable, watchers: WatchStage[], consume: (piece: Buffer) => void): Promise<boolean> {
    try {
      const fused = await last.into!(upstream, (piece) => {
        for (const watcher of watchers) watcher.update(piece);
        consume(piece);
      });
      if (fused) Object.assign(this.measured, finishAll(watchers));
      return fused;
    } catch (error) {
      upstream.destroy();
      throw this.explain(error);
    }
  }

  private async consumeAll(output: Readable, consume: (piece: Buffer) => void): Promise<void> {
    try {
      for await (const piece of output) consume(piece as Buffer);
    } catch (error) {
      throw this.explain(error);
    }
  }

  private explain(error: unknown): unknown {
    const failure = this.firstFailure;
    if (!failure || failure.error !== error || !failure.stage?.describeFailure) return error;
    return failure.stage.describeFailure(error);
  }

  /** Joins `source` and `stages` into one readable; destroys a stream source if that fails. */
  private async join(source: Source, stages: readonly Stage[]): Promise<Readable> {
    let input: Readable | undefined;
    try {
      let rest = stages;
      if (isFileSource(source)) {
        const first = stages[0];
        input = first && !isWatch(first) ? await first.readFile?.(source.file) : undefined;
        if (input) rest = stages.slice(1);
        else input = createReadStream(source.file, { highWaterMark: (first && !isWatch(first) && first.inputChunk) || READ_CHUNK });
      }
      const groups = await this.group(rest);
      if (isReusedReads(source)) input = new ReusedReadsStream(source, groups[0] instanceof Run ? (groups.shift() as Run) : this.newRun([]));
      input ??= source as Readable;
      const streams: Readable[] = [];
      for (const group of groups) streams.push(group instanceof Run ? new StepsTransform(group) : await group.transform());
      groups.forEach((group, index) => this.watchFailures(streams[index]!, group instanceof Run ? undefined : group));
      this.watchFailures(input, undefined);
      if (streams.length === 0) return input;
      // pipeline() destroys every stream on error, so the consumer of the last one sees it.
      pipeline([input, ...streams], () => undefined);
      return streams.at(-1)!;
    } catch (error) {
      (input ?? (isFileSource(source) ? undefined : source))?.destroy();
      throw error;
    }
  }

  /** The stages in order: a Run for each stretch of watchers and Steps, the other transform stages as they are. */
  private async group(stages: readonly Stage[]): Promise<(Run | TransformStage)[]> {
    const groups: (Run | TransformStage)[] = [];
    let links: Link[] = [];
    const endRun = () => {
      if (links.length > 0) groups.push(this.newRun(links));
      links = [];
    };
    for (const stage of stages) {
      if (isWatch(stage)) {
        links.push({ watch: stage });
        continue;
      }
      const step = await stage.step?.();
      if (step) {
        links.push({ stage, step });
        continue;
      }
      endRun();
      groups.push(stage);
    }
    endRun();
    return groups;
  }

  private newRun(links: Link[]): Run {
    return new Run(links, (results) => Object.assign(this.measured, results), (stage, error) => (this.firstFailure ??= { stage, error }));
  }

  private watchFailures(stream: Readable, stage: TransformStage | undefined): void {
    stream.once('error', (error) => {
      this.firstFailure ??= { stage, error };
    });
  }
}
