/**
 * backup-list output: a plain table like WAL-G's (name, modified,
 * wal_segment_backup_start), more columns with --detail, a boxed table with
 * --pretty, and JSON for scripts. WAL-G's backups are listed with walship's.
 */
import { type BackupSentinel, startSegmentOfBackup } from '../archive/backups.ts';
import type { DrillReportSummary } from '../archive/drills.ts';
import { formatBytes, formatDuration } from '../progress/progress.ts';
import type { Row } from '../util/table.ts';

/** A backup's last drill, from its newest report. */
export type LastDrill = DrillReportSummary & { report: string };

export function backupRow(sentinel: BackupSentinel, detail: boolean, drill?: LastDrill): Row {
  const row: Row = {
    name: sentinel.BackupName,
    modified: sentinel.FinishTime,
    wal_segment_backup_start: startSegmentOfBackup(sentinel.BackupName),
  };
  if (!detail) return row;
  return {
    ...row,
    start_time: sentinel.StartTime,
    finish_time: sentinel.FinishTime,
    start_lsn: sentinel.LSN,
    finish_lsn: sentinel.FinishLSN,
    timeline: String(sentinel.Timeline),
    pg_version: String(sentinel.PgVersion),
    hostname: sentinel.Hostname,
    data_dir: sentinel.DataDir,
    size: formatBytes(sentinel.UncompressedSize),
    compressed: formatBytes(sentinel.CompressedSize),
    parts: walship(sentinel) ? String(sentinel.Parts.length) : '',
    permanent: sentinel.IsPermanent ? 'yes' : 'no',
    written_by: sentinel.Writer ?? 'walship',
    last_drill: drill?.finished_at ?? '-',
    drill_result: drill?.result ?? '-',
    drill_rto: drill?.rto_seconds == null ? '-' : formatDuration(drill.rto_seconds * 1000),
  };
}

/** The JSON form: every field, with exact numbers, for scripts. */
export function backupJson(sentinel: BackupSentinel, drill?: LastDrill): Record<string, unknown> {
  return {
    backup_name: sentinel.BackupName,
    time: sentinel.FinishTime,
    wal_file_name: startSegmentOfBackup(sentinel.BackupName),
    start_time: sentinel.StartTime,
    finish_time: sentinel.FinishTime,
    start_lsn: sentinel.LSN,
    finish_lsn: sentinel.FinishLSN,
    timeline: sentinel.Timeline,
    pg_version: sentinel.PgVersion,
    system_identifier: sentinel.SystemIdentifier,
    hostname: sentinel.Hostname,
    data_dir: sentinel.DataDir,
    uncompressed_size: sentinel.UncompressedSize,
    compressed_size: sentinel.CompressedSize,
    compression: walship(sentinel) ? sentinel.Compression : null,
    parts: walship(sentinel) ? sentinel.Parts.length : null,
    is_permanent: sentinel.IsPermanent,
    user_data: sentinel.UserData,
    written_by: sentinel.Writer ?? 'walship',
    last_drill: drill ? { time: drill.finished_at, result: drill.result, rto_seconds: drill.rto_seconds, report: drill.report } : null,
  };
}

/** WAL-G's sentinels name no compression method and list no parts. */
function walship(sentinel: BackupSentinel): boolean {
  return (sentinel.Writer ?? 'walship') === 'walship';
}
