/**
 * Whether the archive holds the WAL that recovery needs, segment by segment,
 * with WAL-G's statuses: FOUND; MISSING_DELAYED and MISSING_UPLOADING for
 * the newest missing ones, which may still arrive; MISSING_LOST for the rest.
 * The one place for "the WAL gaps between X and Y": wal-verify and status ask here.
 *
 * As in WAL-G, the segments are scanned from the newest back: up to
 * `delayed` missing segments before the first one found are delayed, the
 * next `uploading` segments (found or not) may still be uploading, and
 * anything missing before them is lost. A missing segment at or before the
 * one the server's archiver reported stored is lost whatever the windows.
 */
import { parseLsn, segmentNumberOfLsn, segmentStartLsn } from '../postgres/lsn.ts';
import { parseWalFileName, segmentNumberOfName } from '../postgres/wal-name.ts';
import type { ArchiveCatalog } from './catalog.ts';
import type { SegmentRange, WalIndex } from './wal-index.ts';

export const SEGMENT_STATUSES = ['FOUND', 'MISSING_DELAYED', 'MISSING_UPLOADING', 'MISSING_LOST'] as const;
export type SegmentStatus = (typeof SEGMENT_STATUSES)[number];

export interface IntegrityWindows {
  /** Missing segments at the very end that may be delayed (WAL-G's WALG_INTEGRITY_MAX_DELAYED_WALS). */
  delayed: number;
  /** Segments before those that may still be uploading (WAL-G's WALG_UPLOAD_CONCURRENCY). */
  uploading: number;
}

/** Consecutive segments of one timeline with one status. */
export interface StatusRun extends SegmentRange {
  status: SegmentStatus;
}

export interface IntegrityRequest {
  /** The cluster's timeline: the history the check follows. */
  timeline: number;
  /** The last segment recovery needs, on that history; undefined: the newest one stored on it. */
  through?: bigint;
  /** The segment the server's archiver reported stored last (pg_stat_archiver.last_archived_wal), on that history. */
  archivedThrough?: bigint;
  windows: IntegrityWindows;
}

export interface WalIntegrity {
  /** Where the check starts: the start of the oldest backup on the history, else the oldest segment stored on it. */
  from: { segment: bigint; backup?: string } | undefined;
  /** The last segment checked; undefined when nothing is stored on the history. */
  through: bigint | undefined;
  /** Every segment from `from` to `through` in recovery order, as runs. */
  runs: StatusRun[];
  counts: Record<SegmentStatus, number>;
}

/** The WAL that recovery along `timeline`'s history needs, from its oldest backup to `through`, and what is stored of it. */
export function walIntegrity(catalog: ArchiveCatalog, request: IntegrityRequest): WalIntegrity {
  const { wal, segmentSize } = catalog;
  const oldest = catalog.backupsOnHistoryOf(request.timeline)[0];
  const everything = catalog.segmentsBetween(request.timeline, 0n, LAST_LSN);
  const firstStored = everything.map((range) => wal.firstStoredIn(range.timeline, range.first, range.last)).find((segment) => segment !== undefined);
  const newestStored = everything.map((range) => wal.lastStoredIn(range.timeline, range.first, range.last)).findLast((segment) => segment !== undefined);
  const from = oldest ? { segment: segmentNumberOfLsn(parseLsn(oldest.LSN), segmentSize), backup: oldest.BackupName } : firstStored === undefined ? undefined : { segment: firstStored };
  const through = request.through ?? newestStored;
  const counts = Object.fromEntries(SEGMENT_STATUSES.map((status) => [status, 0])) as Record<SegmentStatus, number>;
  if (!from || through === undefined || through < from.segment) return { from, through, runs: [], counts };
  const path = catalog.segmentsBetween(request.timeline, segmentStartLsn(from.segment, segmentSize), segmentStartLsn(through, segmentSize));
  const runs = segmentStatuses(wal, path, request.windows, request.archivedThrough);
  for (const run of runs) counts[run.status] += Number(run.last - run.first + 1n);
  return { from, through, runs, counts };
}

const LAST_LSN = 0xffff_ffff_ffff_ffffn;
/** Missing runs named in a verdict; the rest are counted. */
const NAMED_RUNS = 3;

/**
 * The segment the archiver stored last, as a number on `timeline`'s history
 * (a .backup file's segment; a .partial file's predecessor), when it is on it.
 */
export function archivedSegment(catalog: ArchiveCatalog, timeline: number, lastArchivedWal: string | undefined): bigint | undefined {
  const file = lastArchivedWal === undefined ? undefined : parseWalFileName(lastArchivedWal);
  if (!file?.segment || !catalog.timelines().ancestry(timeline).some((span) => span.timeline === file.timeline)) return undefined;
  const segment = segmentNumberOfName(file.segment, catalog.segmentSize);
  return file.kind === 'partial' ? segment - 1n : segment;
}

/** The first few runs by name ("A", "A to B"), and how many more. */
export function namedRuns(segmentName: (timeline: number, segment: bigint) => string, runs: readonly StatusRun[]): string {
  const named = runs.slice(0, NAMED_RUNS).map((run) =>
    run.first === run.last ? segmentName(run.timeline, run.first) : `${segmentName(run.timeline, run.first)} to ${segmentName(run.timeline, run.last)}`,
  );
  return runs.length > NAMED_RUNS ? `${named.join(', ')} and ${runs.length - NAMED_RUNS} more stretches` : named.join(', ');
}

/**
 * The status of every segment of `path` (ranges in recovery order, as
 * ArchiveCatalog.segmentsBetween gives them, segment numbers rising), as
 * runs in the same order. Memory grows with the gaps, not the segments.
 */
export function segmentStatuses(wal: WalIndex, path: readonly SegmentRange[], windows: IntegrityWindows, archivedThrough?: bigint): StatusRun[] {
  const pieces: { range: SegmentRange; found: boolean }[] = [];
  for (const range of path) {
    let next = range.first;
    for (const gap of wal.gaps(range.timeline, range.first, range.last)) {
      if (gap.first > next) pieces.push({ range: { timeline: range.timeline, first: next, last: gap.first - 1n }, found: true });
      pieces.push({ range: gap, found: false });
      next = gap.last + 1n;
    }
    if (next <= range.last) pieces.push({ range: { timeline: range.timeline, first: next, last: range.last }, found: true });
  }

  const newestFirst: StatusRun[] = [];
  let delayedLeft = BigInt(windows.delayed);
  let uploadingLeft = BigInt(windows.uploading);
  let beforeFirstFound = true;
  for (const { range, found } of pieces.reverse()) {
    const { timeline } = range;
    if (found) {
      beforeFirstFound = false;
      const length = range.last - range.first + 1n;
      uploadingLeft = uploadingLeft > length ? uploadingLeft - length : 0n;
      newestFirst.push({ ...range, status: 'FOUND' });
      continue;
    }
    for (let last = range.last; last >= range.first; ) {
      const left = last - range.first + 1n;
      let status: SegmentStatus = 'MISSING_LOST';
      let taken = left;
      if (beforeFirstFound && delayedLeft > 0n) {
        taken = left < delayedLeft ? left : delayedLeft;
        delayedLeft -= taken;
        status = 'MISSING_DELAYED';
      } else if (uploadingLeft > 0n) {
        taken = left < uploadingLeft ? left : uploadingLeft;
        uploadingLeft -= taken;
        status = 'MISSING_UPLOADING';
      }
      newestFirst.push(...lostUpTo({ timeline, first: last - taken + 1n, last, status }, archivedThrough));
      last -= taken;
    }
  }
  return merged(newestFirst.reverse());
}

/** A missing run with the segments up to `archivedThrough` lost: the archiver was told they were stored. Newest first. */
function lostUpTo(run: StatusRun, archivedThrough: bigint | undefined): StatusRun[] {
  if (run.status === 'MISSING_LOST' || archivedThrough === undefined || run.first > archivedThrough) return [run];
  if (run.last <= archivedThrough) return [{ ...run, status: 'MISSING_LOST' }];
  return [{ ...run, first: archivedThrough + 1n }, { ...run, last: archivedThrough, status: 'MISSING_LOST' }];
}

/** Neighbouring runs of one timeline and status as one. */
function merged(runs: StatusRun[]): StatusRun[] {
  const result: StatusRun[] = [];
  for (const run of runs) {
    const previous = result.at(-1);
    if (previous && previous.timeline === run.timeline && previous.status === run.status && previous.last + 1n === run.first) previous.last = run.last;
    else result.push({ ...run });
  }
  return result;
}
