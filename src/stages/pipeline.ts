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
 * Two fast paths fuse a transform stage with an end of the stream: the first
 * stage after a file source may read the file itself (zstd through reused
 * buffers), and the last transform before a consumer, when only watchers
 * follow it, may hand its output straight to the consumer (zstd into reused
 * memory). The stages around them compose as usual.
 */
import { createReadStream } from 'node:fs';
import { pipeline, type Readable, type Transform, Transform as TransformStream, type TransformCallback } from 'node:stream';
import { WalshipError } from '../errors.ts';

/** Whose bytes a result describes: the content itself, or its stored form (compressed, encrypted). */
export type ResultRole = 'content' | 'stored';
export type ResultName = `${ResultRole}-${'size' | 'crc32' | 'sha256'}`;
type ResultValue<Name extends ResultName> = Name extends `${string}-size` ? number : string;
/** What watch stages measured: '<role>-size' in bytes, '<role>-<algorithm>' in lowercase hex. */
export type StageResults = { [Name in ResultName]?: ResultValue<Name> };

/** A transform stage's work as plain synchronous calls; what each call returns is handed on at once, before the next call. */
export interface Step {
  /** The output for `input`, possibly none yet. */
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

export type Source = Readable | FileSource;

const READ_CHUNK = 1 << 18;

function isWatch(stage: Stage): stage is WatchStage {
  return 'update' in stage;
}

function isFileSource(source: Source): source is FileSource {
  return typeof (source as Partial<FileSource>).file === 'string';
}

/** One element of a run that shares a stream: a watcher, or a transform stage's Step. */
type Link = { watch: WatchStage } | { step: Step; stage?: TransformStage };

/** Runs a Step as a stream of its own (a stage used outside a pipeline's run). */
export function stepStream(step: Step): Transform {
  return new StepsTransform([{ step }], () => undefined, () => undefined);
}

/**
 * A run of watchers and Steps as one stream: each piece passes through them
 * all in one call. A failing Step is reported to `failed` with its stage.
 */
class StepsTransform extends TransformStream {
  private readonly links: Link[];
  private readonly report: (results: StageResults) => void;
  private readonly failed: (stage: TransformStage, error: unknown) => void;

  constructor(links: Link[], report: (results: StageResults) => void, failed: (stage: TransformStage, error: unknown) => void) {
    super();
    this.links = links;
    this.report = report;
    this.failed = failed;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.feed(0, chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.links.forEach((link, index) => {
        if ('step' in link) for (const piece of this.call(link, () => link.step.end())) this.feed(index + 1, piece);
      });
      this.report(finishAll(this.links.flatMap((link) => ('watch' in link ? [link.watch] : []))));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Passes `piece` through the links from `index` on, and what comes out of the last one on to the reader. */
  private feed(index: number, piece: Buffer): void {
    for (; index < this.links.length; index++) {
      const link = this.links[index]!;
      if ('watch' in link) {
        link.watch.update(piece);
        continue;
      }
      for (const output of this.call(link, () => link.step.write(piece))) this.feed(index + 1, output);
      return;
    }
    this.push(piece);
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
      } else {
        input = source;
      }
      const streams = await this.streamsFor(rest);
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

  /** One stream per run of watchers and Steps, one per other transform stage. */
  private async streamsFor(stages: readonly Stage[]): Promise<Transform[]> {
    const streams: Transform[] = [];
    let run: Link[] = [];
    const endRun = () => {
      if (run.length === 0) return;
      const stream = new StepsTransform(run, (results) => Object.assign(this.measured, results), (stage, error) => (this.firstFailure ??= { stage, error }));
      this.watchFailures(stream, undefined);
      streams.push(stream);
      run = [];
    };
    for (const stage of stages) {
      if (isWatch(stage)) {
        run.push({ watch: stage });
        continue;
      }
      const step = await stage.step?.();
      if (step) {
        run.push({ stage, step });
        continue;
      }
      endRun();
      const stream = await stage.transform();
      this.watchFailures(stream, stage);
      streams.push(stream);
    }
    endRun();
    return streams;
  }

  private watchFailures(stream: Readable, stage: TransformStage | undefined): void {
    stream.once('error', (error) => {
      this.firstFailure ??= { stage, error };
    });
  }
}
