/**
 * dump-list output: one row per dump set, one row per database with
 * --detail (and the set's last drill), and JSON with every field for scripts.
 */
import type { DumpDrillSummary } from '../archive/drills.ts';
import type { DumpSentinel } from '../archive/dumps.ts';
import { formatBytes } from '../progress/progress.ts';
import type { Row } from '../util/table.ts';

const GLOBALS = '(globals)';

/** A dump set's last drill (drill --dump), from its newest report. */
export type LastDumpDrill = DumpDrillSummary & { report: string };

export function dumpRows(sentinel: DumpSentinel, detail: boolean, drill?: LastDumpDrill): Row[] {
  if (!detail) {
    return [{
      name: sentinel.DumpName,
      modified: sentinel.FinishTime,
      databases: sentinel.Databases.map((database) => database.Database).join(',') || '-',
      compressed: formatBytes(sentinel.CompressedSize),
    }];
  }
  const objects = [{ ...sentinel.Globals, Database: GLOBALS, SnapshotTime: '-' }, ...sentinel.Databases];
  return objects.map((object) => ({
    name: sentinel.DumpName,
    database: object.Database,
    snapshot_time: object.SnapshotTime,
    finish_time: sentinel.FinishTime,
    size: formatBytes(object.UncompressedSize),
    compressed: formatBytes(object.CompressedSize),
    sha256: object.ContentSHA256,
    pg_version: String(sentinel.PgVersion),
    hostname: sentinel.Hostname,
    permanent: sentinel.IsPermanent ? 'yes' : 'no',
    last_drill: drill?.finished_at ?? '-',
    drill_result: drill?.result ?? '-',
  }));
}

/** The JSON form: every field, with exact numbers, for scripts. */
export function dumpJson(sentinel: DumpSentinel, drill?: LastDumpDrill): Record<string, unknown> {
  return {
    dump_name: sentinel.DumpName,
    start_time: sentinel.StartTime,
    finish_time: sentinel.FinishTime,
    hostname: sentinel.Hostname,
    pg_version: sentinel.PgVersion,
    pg_dump_version: sentinel.PgDumpVersion,
    system_identifier: sentinel.SystemIdentifier,
    uncompressed_size: sentinel.UncompressedSize,
    compressed_size: sentinel.CompressedSize,
    compression: sentinel.Compression,
    is_permanent: sentinel.IsPermanent,
    user_data: sentinel.UserData,
    globals: {
      uncompressed_size: sentinel.Globals.UncompressedSize,
      compressed_size: sentinel.Globals.CompressedSize,
      sha256: sentinel.Globals.ContentSHA256,
      role_passwords: sentinel.Globals.RolePasswords,
    },
    databases: sentinel.Databases.map((database) => ({
      database: database.Database,
      snapshot_time: database.SnapshotTime,
      uncompressed_size: database.UncompressedSize,
      compressed_size: database.CompressedSize,
      sha256: database.ContentSHA256,
      pg_version: database.PgVersion,
      pg_dump_version: database.PgDumpVersion,
      system_identifier: database.SystemIdentifier,
    })),
    last_drill: drill ? { time: drill.finished_at, result: drill.result, rto_seconds: drill.rto_seconds, report: drill.report } : null,
  };
}
