/**
 * The server's archiver, when the libpq settings reach a server:
 * pg_stat_archiver's failures (archiving is failing when the last failure is
 * newer than the last success), the .ready backlog, and the archive lag:
 * the segments and bytes between the server's current WAL file and the
 * newest one in storage, and for how long storage has had nothing newer.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import type { Finding } from '../checks/verdict.ts';
import type { ArchiverState } from '../postgres/archiver.ts';
import { segmentNumberOfLsn, segmentStartLsn } from '../postgres/lsn.ts';
import { formatBytes } from '../progress/progress.ts';
import { clusterTimeline, newestStored } from './recovery.ts';
import { formatAge, formatTime, type MetricSample, plural, type StatusSection } from './section.ts';

/** The server as status reached it, or why it did not. */
export type ServerAnswer = { state: ArchiverState } | { unavailable: string };

export function archiverSection(catalog: ArchiveCatalog, server: ServerAnswer, now: number, maxLagMs: number): StatusSection {
  if ('unavailable' in server) {
    return { name: 'archiver', figures: { server: null, reason: server.unavailable }, findings: [], metrics: [], lines: [`archiver: not checked: ${server.unavailable}`] };
  }
  const { state } = server;
  const findings: Finding[] = [];
  const metrics: MetricSample[] = [
    { name: 'walship_archiver_failed_count', help: "pg_stat_archiver.failed_count: the server's failed archive_command runs since its statistics were reset.", value: state.failedCount },
    { name: 'walship_archiver_archived_files', help: "pg_stat_archiver.archived_count: the server's archived WAL files since its statistics were reset.", value: state.archivedCount },
  ];
  if (state.archiveMode === 'off') findings.push({ state: 'CRITICAL', message: 'the server runs with archive_mode off: no WAL is archived' });
  const failing = state.lastFailedTime !== undefined && (state.lastArchivedTime === undefined || state.lastFailedTime > state.lastArchivedTime);
  if (failing) {
    findings.push({
      state: 'CRITICAL',
      message: `archive_command is failing: ${plural(state.failedCount, 'failure')} (pg_stat_archiver), the last for ${state.lastFailedWal} at ${formatTime(state.lastFailedTime!)}; last success ${state.lastArchivedTime ? `${state.lastArchivedWal} at ${formatTime(state.lastArchivedTime)}` : 'never'}`,
    });
  }
  if (state.lastFailedTime) metrics.push({ name: 'walship_archiver_last_failed_timestamp_seconds', help: 'pg_stat_archiver.last_failed_time.', value: state.lastFailedTime.getTime() / 1000 });
  if (state.lastArchivedTime) metrics.push({ name: 'walship_archiver_last_archived_timestamp_seconds', help: 'pg_stat_archiver.last_archived_time.', value: state.lastArchivedTime.getTime() / 1000 });

  let lag: { segments: number; bytes: number; seconds: number } | undefined;
  if (!state.inRecovery && state.currentWalFile) {
    const timeline = clusterTimeline(catalog, state);
    const newest = newestStored(catalog, timeline);
    const writing = segmentNumberOfLsn(state.lsn, catalog.segmentSize);
    const nextToStore = newest ? newest.segment + 1n : 0n;
    const segments = writing > nextToStore ? Number(writing - nextToStore) : 0;
    const bytes = state.lsn > segmentStartLsn(nextToStore, catalog.segmentSize) ? Number(state.lsn - segmentStartLsn(nextToStore, catalog.segmentSize)) : 0;
    // Complete segments wait: storage has had nothing newer since its newest one was stored.
    const behindMs = segments > 0 && newest ? Math.max(now - newest.stored.getTime(), 0) : 0;
    lag = { segments, bytes, seconds: Math.round(behindMs / 1000) };
    if (behindMs > maxLagMs) findings.push({ state: 'CRITICAL', message: `archiving is ${formatAge(behindMs)} behind (limit ${formatAge(maxLagMs)}): ${plural(segments, 'complete WAL segment')} not in storage` });
    metrics.push(
      { name: 'walship_archive_lag_bytes', help: "WAL bytes between the end of the newest segment in storage and the server's current position.", value: bytes },
      { name: 'walship_archive_lag_segments', help: 'Complete WAL segments the server wrote that are not in storage yet.', value: segments },
      { name: 'walship_archive_lag_seconds', help: 'How long complete segments have waited: since the newest segment in storage was stored (0 when none waits).', value: lag.seconds },
    );
  }
  const pending = state.readyCount ?? lag?.segments;
  if (pending !== undefined) metrics.push({ name: 'walship_archiver_pending_segments', help: 'WAL files waiting to be archived: .ready files in archive_status (or, where the role may not list it, complete segments not in storage).', value: pending });
  const lines = [
    `archiver: archive_mode ${state.archiveMode}, ${state.archivedCount} archived, ${state.failedCount} failed${state.lastFailedTime ? ` (last ${state.lastFailedWal} at ${formatTime(state.lastFailedTime)})` : ''}; last archived ${state.lastArchivedWal ?? 'none'}${state.lastArchivedTime ? ` at ${formatTime(state.lastArchivedTime)}` : ''}`,
    state.inRecovery
      ? 'archiver: the server is in recovery: no archive lag to measure'
      : `archiver: writing ${state.currentWalFile}; ${state.readyCount === undefined ? '.ready files not counted (needs superuser or pg_monitor)' : plural(state.readyCount, '.ready file')} waiting; lag ${plural(lag!.segments, 'segment')}, ${formatBytes(lag!.bytes)}${lag!.seconds > 0 ? `, ${formatAge(lag!.seconds * 1000)}` : ''}`,
  ];
  return {
    name: 'archiver',
    figures: {
      in_recovery: state.inRecovery,
      archive_mode: state.archiveMode,
      failed_count: state.failedCount,
      archived_count: state.archivedCount,
      last_failed_wal: state.lastFailedWal ?? null,
      last_failed_time: state.lastFailedTime?.toISOString() ?? null,
      last_archived_wal: state.lastArchivedWal ?? null,
      last_archived_time: state.lastArchivedTime?.toISOString() ?? null,
      current_wal_file: state.currentWalFile ?? null,
      ready_count: state.readyCount ?? null,
      failing,
      lag: lag ? { segments: lag.segments, bytes: lag.bytes, seconds: lag.seconds } : null,
    },
    findings,
    metrics,
    lines,
  };
}
