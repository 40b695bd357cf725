/**
 * The workload every benchmark reads: a real PostgreSQL 15 cluster (16 MiB
 * segments) whose archiver is held back by `archive_command = 'false'` while
 * pgbench writes WAL, so every segment stays in pg_wal as a `.ready` backlog.
 * First a bulk load (pgbench -i), then an update-heavy pgbench script
 * (UPDATE of 100-row ranges of pgbench_accounts) with checkpoints every 30 s,
 * so segments carry heap updates and full-page images as in production.
 * (The built-in TPC-B writes WAL at about 0.2 segment/s here: too slow.) A cold copy of the data directory taken before any of that is
 * the base backup the replay benchmark recovers from.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { isMissing } from '../../src/fs/missing.ts';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { LOCAL_CLUSTER } from '../../test/support/postgres.ts';
import { postgresDirectory, writePostgresFile, type BenchContext } from './common.ts';

export interface WalFixture {
  cluster: PostgresCluster;
  /** Every backlog segment, oldest first. */
  segments: string[];
  /** Segments written by the bulk load (pgbench -i) and by the OLTP run. */
  bulk: string[];
  oltp: string[];
  /** The data directory as it was after initdb, before any WAL was written (stopped cleanly). */
  coldBackup: string;
}

const SEGMENT = /^[0-9A-F]{24}$/;

function statusDirectory(cluster: PostgresCluster): string {
  return join(cluster.dataDir, 'pg_wal', 'archive_status');
}

/** Segments whose archive status is `.ready` (the archiver's backlog). */
export function readySegments(cluster: PostgresCluster): string[] {
  return readdirSync(statusDirectory(cluster))
    .filter((name) => name.endsWith('.ready') && SEGMENT.test(name.slice(0, 24)))
    .map((name) => name.slice(0, 24))
    .sort();
}

export function backlogSize(cluster: PostgresCluster): number {
  let count = 0;
  for (const name of readdirSync(statusDirectory(cluster))) if (name.endsWith('.ready')) count++;
  return count;
}

/** Marks `segments` as not archived again (`.done` back to `.ready`), to drain the same backlog once more. */
export function markReady(cluster: PostgresCluster, segments: string[]): void {
  const directory = statusDirectory(cluster);
  for (const segment of segments) {
    try {
      renameSync(join(directory, `${segment}.done`), join(directory, `${segment}.ready`));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
}

/** Points the archiver at `command` (ALTER SYSTEM + reload): it wakes up at once. */
export async function setArchiveCommand(cluster: PostgresCluster, command: string): Promise<void> {
  await cluster.sql(`ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'`);
  await cluster.sql('SELECT pg_reload_conf()');
}

async function currentSegment(cluster: PostgresCluster): Promise<string> {
  return cluster.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
}

/** pgbench arguments for the update-heavy write load: UPDATEs of 100-row ranges of pgbench_accounts. */
export function updateWorkload(cluster: PostgresCluster, clients = 4): string[] {
  return ['-n', '-f', rangeUpdateScript(cluster), '-c', String(clients), '-j', '2'];
}

function rangeUpdateScript(cluster: PostgresCluster): string {
  return writePostgresFile(
    `${cluster.root}/range-update.sql`,
    '\\set aid random(1, 100000 * :scale - 100)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN :aid AND :aid + 99;\n',
  );
}

/**
 * The heaviest write load pgbench puts on this machine: half range UPDATEs,
 * half 1000-row INSERTs into pgbench_history (about 1.5x the WAL of updates alone).
 */
export function heavyWorkload(cluster: PostgresCluster, clients = 4): string[] {
  const insert = writePostgresFile(
    `${cluster.root}/bulk-insert.sql`,
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, 1, now() FROM generate_series(1, 1000) g;\n',
  );
  return ['-n', '-f', `${rangeUpdateScript(cluster)}@1`, '-f', `${insert}@1`, '-c', String(clients), '-j', '2'];
}

/** Builds a cluster with `target` `.ready` segments (a few more, at most one pgbench slice's worth). */
export async function createWalFixture(context: BenchContext, target: number): Promise<WalFixture> {
  const started = Date.now();
  const cluster = await PostgresCluster.init({
    ...LOCAL_CLUSTER,
    settings: {
      archive_mode: 'on',
      archive_command: 'false',
      wal_keep_size: '16GB',
      max_wal_size: '16GB',
      checkpoint_timeout: '30s',
      synchronous_commit: 'off',
      shared_buffers: '128MB',
      log_min_messages: 'warning',
      log_checkpoints: 'off',
    },
  });
  const coldBackup = join(context.root, 'cold-backup');
  postgresDirectory(coldBackup);
  execFileSync('cp', ['-a', `${cluster.dataDir}/.`, coldBackup]);
  await cluster.start();

  // About 0.75 segment per scale unit; the bulk load is roughly a third of the backlog.
  const scale = Math.max(2, Math.round(target * 0.44));
  context.log(`fixture: pgbench -i -s ${scale} (bulk load), archiving held back`);
  await cluster.pgbench(['-i', '-s', String(scale), '-q']);
  await cluster.sql('CHECKPOINT');
  const afterBulk = await currentSegment(cluster);

  context.log(`fixture: pgbench range updates (4 clients) until ${target} segments are .ready`);
  const workload = updateWorkload(cluster);
  for (let slice = 0; slice < 400 && backlogSize(cluster) < target; slice++) {
    const missing = target - backlogSize(cluster);
    const seconds = missing > 20 ? 5 : missing > 4 ? 1 : 0;
    // About 2 segments/s: near the end, a few hundred transactions at a time.
    await cluster.pgbench(seconds ? [...workload, '-T', String(seconds)] : [...workload, '-t', '150']);
  }
  const segments = readySegments(cluster);
  if (segments.length < target) throw new Error(`fixture: only ${segments.length} of ${target} segments after the pgbench budget`);
  // From here on nothing may recycle the backlog: no timed checkpoints while the benchmarks run.
  await cluster.sql("ALTER SYSTEM SET checkpoint_timeout = '1d'");
  await cluster.sql('SELECT pg_reload_conf()');
  const bulk = segments.filter((segment) => segment < afterBulk);
  const oltp = segments.filter((segment) => segment > afterBulk);
  context.log(`fixture: ${segments.length} segments (${bulk.length} bulk load, ${oltp.length} OLTP) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { cluster, segments, bulk, oltp, coldBackup };
}
