/**
 * How a running server's archiver stands, through psql and the libpq
 * settings: pg_stat_archiver's counters and last files, the .ready files
 * waiting in pg_wal/archive_status (pg_ls_archive_statusdir(), for superusers
 * and pg_monitor), and the WAL file the server writes now.
 */
import { WalshipError } from '../errors.ts';
import { parseLsn } from './lsn.ts';
import { runCaptured } from './programs.ts';

export interface ArchiverState {
  inRecovery: boolean;
  archiveMode: string;
  /** pg_current_wal_lsn() (pg_last_wal_replay_lsn() on a standby). */
  lsn: bigint;
  /** The WAL file the server writes now; undefined on a standby. */
  currentWalFile: string | undefined;
  archivedCount: number;
  failedCount: number;
  lastArchivedWal: string | undefined;
  lastArchivedTime: Date | undefined;
  lastFailedWal: string | undefined;
  lastFailedTime: Date | undefined;
  /** The .ready files waiting; undefined when the role may not list archive_status (not superuser nor pg_monitor). */
  readyCount: number | undefined;
}

const ARCHIVER_QUERY = `SELECT pg_is_in_recovery(), current_setting('archive_mode'),
  CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
  CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END,
  a.archived_count, a.failed_count, coalesce(a.last_archived_wal, ''), coalesce(extract(epoch FROM a.last_archived_time)::text, ''),
  coalesce(a.last_failed_wal, ''), coalesce(extract(epoch FROM a.last_failed_time)::text, ''),
  CASE WHEN has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE')
       THEN (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')::text ELSE '' END
FROM pg_stat_archiver a`;

/** Asks the server the libpq settings in `env` reach; one that cannot be reached or asked is a WalshipError saying why. */
export async function queryArchiver(psql: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ArchiverState> {
  const result = await runCaptured(psql, ['-X', '-A', '-t', '-q', '-w', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', ARCHIVER_QUERY], env, { timeoutMs });
  if (result.code !== 0) {
    const reason = result.stderr.split('\n').map((line) => line.replace(/^psql: (error: )?/, '').trim()).find(Boolean);
    throw new WalshipError(reason || `psql exited with status ${result.code}`);
  }
  const fields = result.stdout.replace(/\n$/, '').split('\t');
  const [inRecovery, archiveMode, lsn, currentWalFile, archived, failed, lastArchivedWal, lastArchivedTime, lastFailedWal, lastFailedTime, ready] = fields;
  if (fields.length !== 11 || !/^[0-9A-F]+\/[0-9A-F]+$/i.test(lsn!) || !/^\d+$/.test(archived!) || !/^\d+$/.test(failed!)) {
    throw new WalshipError(`the server answered "${result.stdout.trim()}" about its archiver`);
  }
  const time = (epoch: string) => (epoch === '' ? undefined : new Date(Number(epoch) * 1000));
  return {
    inRecovery: inRecovery === 't',
    archiveMode: archiveMode!,
    lsn: parseLsn(lsn!),
    currentWalFile: currentWalFile || undefined,
    archivedCount: Number(archived),
    failedCount: Number(failed),
    lastArchivedWal: lastArchivedWal || undefined,
    lastArchivedTime: time(lastArchivedTime!),
    lastFailedWal: lastFailedWal || undefined,
    lastFailedTime: time(lastFailedTime!),
    readyCount: ready === '' ? undefined : Number(ready),
  };
}
