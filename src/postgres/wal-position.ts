/**
 * Where a running server's WAL is, through psql and the libpq settings: its
 * current position and timeline, and the last file its archiver stored
 * (pg_stat_archiver.last_archived_wal). On a standby, the position replayed.
 */
import { WalshipError } from '../errors.ts';
import { parseLsn } from './lsn.ts';
import { runCaptured } from './programs.ts';

export interface ServerWalPosition {
  /** pg_current_wal_lsn(), or on a standby pg_last_wal_replay_lsn(). */
  lsn: bigint;
  timeline: number;
  inRecovery: boolean;
  /** pg_stat_archiver.last_archived_wal: a segment, history, .partial or .backup file name. */
  lastArchivedWal: string | undefined;
}

// pg_walfile_name() names the insert timeline, but only outside recovery; a standby's is its last checkpoint's.
const POSITION_QUERY = `SELECT pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
  CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  coalesce((SELECT last_archived_wal FROM pg_stat_archiver), '')`;

/** Asks the server the libpq settings in `env` reach; a server that cannot be reached or asked is a WalshipError saying why. */
export async function queryWalPosition(psql: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ServerWalPosition> {
  const result = await runCaptured(psql, ['-X', '-A', '-t', '-q', '-w', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', POSITION_QUERY], env, { timeoutMs });
  if (result.code !== 0) {
    const reason = result.stderr.split('\n').map((line) => line.replace(/^psql: (error: )?/, '').trim()).find(Boolean);
    throw new WalshipError(reason || `psql exited with status ${result.code}`);
  }
  const [inRecovery = '', lsn = '', timeline = '', lastArchived = ''] = result.stdout.trim().split('\t');
  if (!/^\d+$/.test(timeline) || !/^[0-9A-F]+\/[0-9A-F]+$/i.test(lsn)) throw new WalshipError(`the server answered "${result.stdout.trim()}" for its WAL position`);
  return { lsn: parseLsn(lsn), timeline: Number(timeline), inRecovery: inRecovery === 't', lastArchivedWal: lastArchived || undefined };
}
