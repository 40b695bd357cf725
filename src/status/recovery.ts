/**
 * The recovery window: per timeline, the oldest point that can be restored
 * (the finish of the oldest backup on its history) and the newest (when the
 * last segment stored on it was stored), and the WAL lost between them
 * (archive/wal-integrity.ts, wal-verify's own logic), to the server's
 * position when one is reached.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import { archivedSegment, type IntegrityWindows, namedRuns, walIntegrity } from '../archive/wal-integrity.ts';
import type { Finding } from '../checks/verdict.ts';
import type { ArchiverState } from '../postgres/archiver.ts';
import { segmentNumberOfLsn } from '../postgres/lsn.ts';
import { parseWalFileName } from '../postgres/wal-name.ts';
import { formatTime, type MetricSample, plural, seconds, type StatusSection } from './section.ts';

const LAST_LSN = 0xffff_ffff_ffff_ffffn;

/** The cluster's timeline: the server's, else the highest in storage. */
export function clusterTimeline(catalog: ArchiveCatalog, server: ArchiverState | undefined): number {
  const writing = server?.currentWalFile === undefined ? undefined : parseWalFileName(server.currentWalFile);
  return writing?.timeline ?? catalog.wal.namedTimelines().at(-1) ?? 1;
}

/** The newest segment stored on `timeline`'s history, with when it was stored. */
export function newestStored(catalog: ArchiveCatalog, timeline: number): { name: string; segment: bigint; stored: Date } | undefined {
  const { wal } = catalog;
  for (const range of catalog.segmentsBetween(timeline, 0n, LAST_LSN).reverse()) {
    const segment = wal.lastStoredIn(range.timeline, range.first, range.last);
    if (segment === undefined) continue;
    const run = wal.runs(range.timeline).find((candidate) => candidate.first <= segment && segment <= candidate.last)!;
    return { name: wal.segmentName(range.timeline, segment), segment, stored: run.newest };
  }
  return undefined;
}

export function recoverySection(catalog: ArchiveCatalog, server: ArchiverState | undefined, windows: IntegrityWindows): StatusSection {
  const { wal } = catalog;
  const timeline = clusterTimeline(catalog, server);
  const through = server ? segmentNumberOfLsn(server.lsn, catalog.segmentSize) - 1n : undefined;
  const integrity = walIntegrity(catalog, { timeline, through, archivedThrough: archivedSegment(catalog, timeline, server?.lastArchivedWal), windows });
  const lost = integrity.runs.filter((run) => run.status === 'MISSING_LOST');
  const findings: Finding[] = [];
  if (lost.length > 0) findings.push({ state: 'CRITICAL', message: `${plural(integrity.counts.MISSING_LOST, 'WAL segment')} missing on timeline ${timeline}'s history: ${namedRuns(wal.segmentName.bind(wal), lost)}` });

  const windowsByTimeline = [...new Set([...wal.timelines(), timeline])].sort((a, b) => a - b).map((onTimeline) => {
    const oldest = catalog.backupsOnHistoryOf(onTimeline).sort((a, b) => a.FinishTime.localeCompare(b.FinishTime))[0];
    const newest = newestStored(catalog, onTimeline);
    return { timeline: onTimeline, oldest, newest };
  });
  const current = windowsByTimeline.find((window) => window.timeline === timeline)!;
  const metrics: MetricSample[] = [{ name: 'walship_wal_missing_segments', help: "WAL segments lost between the oldest backup and the newest segment (or the server's position) on the cluster's timeline history.", value: integrity.counts.MISSING_LOST }];
  if (current.newest) metrics.push({ name: 'walship_wal_last_archived_timestamp_seconds', help: "When the newest WAL segment on the cluster's timeline history was stored.", value: seconds(current.newest.stored) });
  if (current.oldest) metrics.push({ name: 'walship_recovery_window_start_timestamp_seconds', help: 'The oldest point in time that can be restored: the finish of the oldest backup on the timeline history.', value: seconds(Date.parse(current.oldest.FinishTime)) });
  const lines = windowsByTimeline.map(({ timeline: onTimeline, oldest, newest }) =>
    oldest && newest
      ? `recovery window, timeline ${onTimeline}: from ${formatTime(new Date(oldest.FinishTime))} (${oldest.BackupName}) to ${formatTime(newest.stored)} (${newest.name})`
      : `recovery window, timeline ${onTimeline}: none (${oldest ? 'no WAL stored' : 'no backup on its history'})`,
  );
  lines.push(lost.length > 0 ? `WAL: ${findings[0]!.message}` : `WAL: no segment missing on timeline ${timeline}'s history (${plural(integrity.counts.FOUND, 'segment')} checked)`);
  return {
    name: 'recovery_window',
    figures: {
      timeline,
      timelines: windowsByTimeline.map(({ timeline: onTimeline, oldest, newest }) => ({
        timeline: onTimeline,
        start: oldest ? { time: oldest.FinishTime, backup: oldest.BackupName } : null,
        end: newest ? { time: newest.stored.toISOString(), segment: newest.name } : null,
      })),
      segments: integrity.counts,
      missing: lost.map((run) => ({ timeline: run.timeline, first: wal.segmentName(run.timeline, run.first), last: wal.segmentName(run.timeline, run.last) })),
    },
    findings,
    metrics,
    lines,
  };
}
