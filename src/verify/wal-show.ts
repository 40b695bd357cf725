/**
 * wal-show: the archive's timelines, from its history files and WAL names,
 * with WAL-G's columns: each timeline's parent and switch point, its first
 * and last segment, how many are stored, the gaps between them, OK or
 * LOST_SEGMENTS, and the backups that start on it.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import type { SegmentRange } from '../archive/wal-index.ts';
import { plainTable } from '../util/table.ts';
import { formatLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import type { Storage } from '../storage/storage.ts';

export interface TimelineSummary {
  timeline: number;
  /** From its history file; undefined for timeline 1, or a timeline without one. */
  parent: number | undefined;
  switchPoint: bigint | undefined;
  hasHistory: boolean;
  /** From the switch point's segment (or the first stored) to the last stored; undefined without segments. */
  first: bigint | undefined;
  last: bigint | undefined;
  stored: number;
  gaps: SegmentRange[];
  missing: number;
  status: 'OK' | 'LOST_SEGMENTS';
  backups: string[];
}

/** The archive's timelines, as text (WAL-G's table) and as JSON. */
export async function showWal(storage: Storage): Promise<{ text: string; json: unknown[] }> {
  const catalog = await ArchiveCatalog.load(storage);
  const timelines = describeTimelines(catalog);
  return { text: timelinesText(catalog, timelines), json: timelinesJson(catalog, timelines) };
}

export function describeTimelines(catalog: ArchiveCatalog): TimelineSummary[] {
  const { wal } = catalog;
  const graph = catalog.timelines();
  const backups = catalog.backups();
  return wal.namedTimelines().map((timeline) => {
    const switchPoint = graph.switchPoint(timeline);
    const stored = wal.runs(timeline);
    const branchesAt = switchPoint === undefined ? undefined : segmentNumberOfLsn(switchPoint, catalog.segmentSize);
    const firstStored = stored[0]?.first;
    const first = branchesAt !== undefined && firstStored !== undefined && branchesAt < firstStored ? branchesAt : firstStored;
    const last = stored.at(-1)?.last;
    const gaps = first === undefined || last === undefined ? [] : wal.gaps(timeline, first, last);
    const missing = gaps.reduce((sum, gap) => sum + Number(gap.last - gap.first + 1n), 0);
    return {
      timeline,
      parent: graph.parent(timeline),
      switchPoint,
      hasHistory: graph.hasHistory(timeline),
      first,
      last,
      stored: stored.reduce((sum, run) => sum + Number(run.last - run.first + 1n), 0),
      gaps,
      missing,
      status: missing > 0 ? 'LOST_SEGMENTS' : 'OK',
      backups: backups.filter((backup) => backup.Timeline === timeline).map((backup) => backup.BackupName),
    };
  });
}

/** The table WAL-G prints, then a line for each gap and each timeline's backups. */
export function timelinesText(catalog: ArchiveCatalog, timelines: readonly TimelineSummary[]): string {
  if (timelines.length === 0) return `${catalog.wal.objects === 0 ? 'no WAL in storage' : 'no timelines in storage'}`;
  const name = (timeline: number, segment: bigint | undefined) => (segment === undefined ? '-' : catalog.wal.segmentName(timeline, segment));
  const rows = timelines.map((summary) => ({
    TLI: String(summary.timeline),
    'PARENT TLI': summary.parent === undefined ? '-' : String(summary.parent),
    'SWITCHPOINT LSN': summary.switchPoint === undefined ? '-' : formatLsn(summary.switchPoint),
    'START SEGMENT': name(summary.timeline, summary.first),
    'END SEGMENT': name(summary.timeline, summary.last),
    'SEGMENT RANGE': String(rangeSize(summary)),
    'SEGMENTS COUNT': String(summary.stored),
    STATUS: summary.status,
    'BACKUPS COUNT': String(summary.backups.length),
  }));
  const notes = timelines.flatMap((summary) => [
    ...(summary.timeline > 1 && !summary.hasHistory ? [`timeline ${summary.timeline} has no history file in storage: recovery cannot follow it`] : []),
    ...summary.gaps.map((gap) => `timeline ${summary.timeline} is missing ${gapText(catalog, gap)}`),
    ...(summary.backups.length > 0 ? [`backups starting on timeline ${summary.timeline}: ${summary.backups.join(', ')}`] : []),
  ]);
  return [plainTable(rows), ...notes].join('\n');
}

/** The JSON form, with WAL-G's field names where it has them; gaps as ranges, not every name. */
export function timelinesJson(catalog: ArchiveCatalog, timelines: readonly TimelineSummary[]): unknown[] {
  const name = (timeline: number, segment: bigint | undefined) => (segment === undefined ? null : catalog.wal.segmentName(timeline, segment));
  return timelines.map((summary) => ({
    id: summary.timeline,
    parent_id: summary.parent ?? null,
    switch_point_lsn: summary.switchPoint === undefined ? null : formatLsn(summary.switchPoint),
    start_segment: name(summary.timeline, summary.first),
    end_segment: name(summary.timeline, summary.last),
    segment_range_size: rangeSize(summary),
    segments_count: summary.stored,
    missing_segments_count: summary.missing,
    missing_segments: summary.gaps.map((gap) => ({ start_segment: name(gap.timeline, gap.first), end_segment: name(gap.timeline, gap.last), count: Number(gap.last - gap.first + 1n) })),
    status: summary.status,
    has_history_file: summary.hasHistory,
    backups: summary.backups,
  }));
}

function rangeSize(summary: TimelineSummary): number {
  return summary.first === undefined || summary.last === undefined ? 0 : Number(summary.last - summary.first + 1n);
}

function gapText(catalog: ArchiveCatalog, gap: SegmentRange): string {
  const first = catalog.wal.segmentName(gap.timeline, gap.first);
  if (gap.first === gap.last) return first;
  return `${first} to ${catalog.wal.segmentName(gap.timeline, gap.last)} (${gap.last - gap.first + 1n} segments)`;
}
