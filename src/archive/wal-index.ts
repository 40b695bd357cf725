/**
 * The WAL an archive holds, by timeline, as runs of consecutive segments: a
 * run is [first segment number, last] with its bytes and its newest object's
 * time. Memory grows with the number of gaps, not of files: a million
 * segments without a gap are one run.
 *
 * Names alone do not give segment numbers (an "xlog id" holds 2^32 / segment
 * size segments), and the segment size may be known only once the listing is
 * done, so the builder keeps runs within one xlog id and the index joins them.
 */
import { WalshipError } from '../errors.ts';
import { segmentsPerXLogId } from '../postgres/lsn.ts';
import { segmentName, segmentNumberOfName, type WalFileName } from '../postgres/wal-name.ts';
import type { ObjectInfo } from '../storage/storage.ts';

export interface WalRun {
  timeline: number;
  /** Segment numbers, counted from 0 on each timeline (postgres/lsn.ts segmentNumberOfLsn). */
  first: bigint;
  last: bigint;
  /** Stored bytes of the run's objects (a segment stored under two extensions counts twice). */
  bytes: number;
  /** The newest object's lastModified. */
  newest: Date;
}

export interface SegmentRange {
  timeline: number;
  first: bigint;
  last: bigint;
}

/** A history, .partial or .backup file: there are few of them. */
export interface WalOtherFile {
  file: WalFileName;
  key: string;
  extension: string;
  size: number;
  lastModified: Date;
}

/** Segments first..last of one xlog id, as listed. */
interface RawRun {
  xlogId: number;
  first: number;
  last: number;
  bytes: number;
  newest: number;
}

const compareRaw = (xlogId: number, segment: number, run: RawRun) => (xlogId - run.xlogId) || (segment < run.first ? -1 : segment > run.last ? 1 : 0);

/** Collects WAL objects as a listing yields them, in any order. */
export class WalIndexBuilder {
  private readonly raw = new Map<number, RawRun[]>();
  private readonly others: WalOtherFile[] = [];
  private objects = 0;
  private bytes = 0;

  add(file: WalFileName, extension: string, object: ObjectInfo): void {
    this.objects++;
    this.bytes += object.size;
    if (file.kind !== 'segment') {
      this.others.push({ file, key: object.key, extension, size: object.size, lastModified: object.lastModified });
      return;
    }
    const name = file.name;
    this.addSegment(file.timeline, parseInt(name.slice(8, 16), 16), parseInt(name.slice(16, 24), 16), object.size, object.lastModified.getTime());
  }

  private addSegment(timeline: number, xlogId: number, segment: number, bytes: number, modified: number): void {
    let runs = this.raw.get(timeline);
    if (!runs) this.raw.set(timeline, (runs = []));
    const last = runs.at(-1);
    // Listings come in key order, so nearly every segment extends the last run.
    if (last && last.xlogId === xlogId && last.last + 1 === segment) {
      last.last = segment;
      absorb(last, bytes, modified);
      return;
    }
    let low = 0;
    let high = runs.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const order = compareRaw(xlogId, segment, runs[middle]!);
      if (order === 0) return absorb(runs[middle]!, bytes, modified); // the same segment under another extension
      if (order < 0) high = middle;
      else low = middle + 1;
    }
    const before = runs[low - 1];
    const after = runs[low];
    const extendsBefore = before?.xlogId === xlogId && before.last + 1 === segment;
    const extendsAfter = after?.xlogId === xlogId && after.first - 1 === segment;
    if (extendsBefore && extendsAfter) {
      before.last = after.last;
      absorb(before, after.bytes, after.newest);
      absorb(before, bytes, modified);
      runs.splice(low, 1);
    } else if (extendsBefore) {
      before.last = segment;
      absorb(before, bytes, modified);
    } else if (extendsAfter) {
      after.first = segment;
      absorb(after, bytes, modified);
    } else {
      runs.splice(low, 0, { xlogId, first: segment, last: segment, bytes, newest: modified });
    }
  }

  /** The index, once the segment size is known. */
  finish(segmentSize: number): WalIndex {
    const perId = segmentsPerXLogId(segmentSize);
    const timelines = new Map<number, WalRun[]>();
    for (const [timeline, raw] of this.raw) {
      const runs: WalRun[] = [];
      let previousXlogId: number | undefined;
      for (const run of raw) {
        if (BigInt(run.last) >= perId) {
          const name = [timeline, run.xlogId, run.last].map((part) => part.toString(16).toUpperCase().padStart(8, '0')).join('');
          throw new WalshipError(`WAL segment ${name} does not exist with ${segmentSize / 1048576} MiB segments`);
        }
        const first = BigInt(run.xlogId) * perId + BigInt(run.first);
        const last = BigInt(run.xlogId) * perId + BigInt(run.last);
        const previous = runs.at(-1);
        // Within an xlog id the builder has joined them already.
        if (previous && previousXlogId !== run.xlogId && previous.last + 1n === first) {
          previous.last = last;
          previous.bytes += run.bytes;
          if (run.newest > previous.newest.getTime()) previous.newest = new Date(run.newest);
        } else {
          runs.push({ timeline, first, last, bytes: run.bytes, newest: new Date(run.newest) });
        }
        previousXlogId = run.xlogId;
      }
      timelines.set(timeline, runs);
    }
    return new WalIndex(segmentSize, timelines, this.others, this.objects, this.bytes);
  }
}

function absorb(run: RawRun, bytes: number, modified: number): void {
  run.bytes += bytes;
  if (modified > run.newest) run.newest = modified;
}

export class WalIndex {
  readonly segmentSize: number;
  /** Every WAL object, segments and other files, and their stored bytes. */
  readonly objects: number;
  readonly bytes: number;
  private readonly runsByTimeline: ReadonlyMap<number, readonly WalRun[]>;
  private readonly others: readonly WalOtherFile[];

  constructor(segmentSize: number, runs: ReadonlyMap<number, readonly WalRun[]>, others: readonly WalOtherFile[], objects: number, bytes: number) {
    this.segmentSize = segmentSize;
    this.runsByTimeline = runs;
    this.others = others;
    this.objects = objects;
    this.bytes = bytes;
  }

  /** The timelines that hold segments, in order. */
  timelines(): number[] {
    return [...this.runsByTimeline.keys()].sort((a, b) => a - b);
  }

  /** Every timeline a stored WAL file names (segments, history, .partial and .backup files), in order. */
  namedTimelines(): number[] {
    return [...new Set([...this.runsByTimeline.keys(), ...this.others.map((other) => other.file.timeline)])].sort((a, b) => a - b);
  }

  runs(timeline: number): readonly WalRun[] {
    return this.runsByTimeline.get(timeline) ?? [];
  }

  first(timeline: number): bigint | undefined {
    return this.runs(timeline)[0]?.first;
  }

  last(timeline: number): bigint | undefined {
    return this.runs(timeline).at(-1)?.last;
  }

  /** History, .partial and .backup files. */
  otherFiles(kind?: WalFileName['kind']): readonly WalOtherFile[] {
    return kind ? this.others.filter((other) => other.file.kind === kind) : this.others;
  }

  /** The segments of `timeline` from `from` to `to` (inclusive) that are missing, as ranges. */
  gaps(timeline: number, from: bigint, to: bigint): SegmentRange[] {
    const gaps: SegmentRange[] = [];
    const runs = this.runs(timeline);
    let next = from;
    for (let index = this.firstRunEndingAtOrAfter(runs, from); index < runs.length && next <= to; index++) {
      const run = runs[index]!;
      if (run.first > to) break;
      if (run.first > next) gaps.push({ timeline, first: next, last: run.first - 1n });
      if (run.last + 1n > next) next = run.last + 1n;
    }
    if (next <= to) gaps.push({ timeline, first: next, last: to });
    return gaps;
  }

  /** The newest segment of `timeline` stored from `from` to `to` (inclusive), if any. */
  lastStoredIn(timeline: number, from: bigint, to: bigint): bigint | undefined {
    const runs = this.runs(timeline);
    const index = this.firstRunEndingAtOrAfter(runs, to);
    const containing = runs[index];
    if (containing && containing.first <= to) return to;
    const before = runs[index - 1];
    return before && before.last >= from ? before.last : undefined;
  }

  /** The oldest segment of `timeline` stored from `from` to `to` (inclusive), if any. */
  firstStoredIn(timeline: number, from: bigint, to: bigint): bigint | undefined {
    const run = this.runs(timeline)[this.firstRunEndingAtOrAfter(this.runs(timeline), from)];
    if (!run || run.first > to) return undefined;
    return run.first > from ? run.first : from;
  }

  /** Whether the WAL file `name` (segment, history, .partial or .backup) is stored. */
  has(name: string): boolean {
    if (!/^[0-9A-F]{24}$/.test(name)) return this.others.some((other) => other.file.name === name);
    const perId = segmentsPerXLogId(this.segmentSize);
    if (BigInt(`0x${name.slice(16, 24)}`) >= perId) return false;
    const segment = segmentNumberOfName(name, this.segmentSize);
    const runs = this.runs(parseInt(name.slice(0, 8), 16));
    const run = runs[this.firstRunEndingAtOrAfter(runs, segment)];
    return run !== undefined && run.first <= segment;
  }

  /** The name of segment number `segment` of `timeline`. */
  segmentName(timeline: number, segment: bigint): string {
    return segmentName(timeline, segment, this.segmentSize);
  }

  private firstRunEndingAtOrAfter(runs: readonly WalRun[], segment: bigint): number {
    let low = 0;
    let high = runs.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (runs[middle]!.last < segment) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
