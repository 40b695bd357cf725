/**
 * The archive-and-restore story the end-to-end tests share: rows committed
 * before the last archived segment must come back, rows after it must not.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { walshipBinary } from './paths.ts';
import { PostgresCluster } from './postgres.ts';

/** A started cluster whose archive_command is walship wal-push, with `env` for walship. */
export async function startArchivingPrimary(env: Record<string, string>): Promise<PostgresCluster> {
  const primary = await PostgresCluster.init({
    env,
    settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p`, wal_keep_size: '1GB' },
  });
  await primary.start();
  return primary;
}

export interface ArchivedState {
  /** pgbench_history rows committed before the last archived segment. */
  historyRows: string;
  /** The last segment archived before the primary was lost. */
  lastArchived: string;
}

/**
 * Commits 5000 'archived' marker rows and pgbench transactions, waits for their
 * segment to be archived, commits 1000 'unarchived' rows, and loses the
 * primary with an immediate stop (a clean shutdown would archive those too).
 */
export async function commitThenLosePrimary(primary: PostgresCluster): Promise<ArchivedState> {
  await primary.sql('CREATE TABLE marker (id int PRIMARY KEY, phase text)');
  await primary.sql("INSERT INTO marker SELECT g, 'archived' FROM generate_series(1, 5000) g");
  await primary.pgbench(['-t', '200', '-c', '2', '-N']);
  const historyRows = await primary.sql('SELECT count(*) FROM pgbench_history');
  const lastArchived = await primary.switchAndWaitArchived();
  await primary.sql("INSERT INTO marker SELECT g, 'unarchived' FROM generate_series(5001, 6000) g");
  await primary.stop('immediate');
  return { historyRows, lastArchived };
}

/** Starts the base backup in `dataDir` with restore_command = wal-fetch and checks exactly the archived rows are back. */
export async function restoreWithWalFetch(dataDir: string, root: string, env: Record<string, string>, expected: ArchivedState): Promise<PostgresCluster> {
  const restored = await PostgresCluster.adopt(dataDir, root, {
    env,
    settings: { restore_command: `${walshipBinary} wal-fetch %f %p`, archive_mode: 'off' },
  });
  restored.writeFile('recovery.signal', '');
  await restored.start();
  await restored.waitPromoted();
  assert.equal(await restored.sql("SELECT count(*) FROM marker WHERE phase = 'archived'"), '5000');
  assert.equal(await restored.sql("SELECT count(*) FROM marker WHERE phase = 'unarchived'"), '0');
  assert.equal(await restored.sql('SELECT count(*) FROM pgbench_history'), expected.historyRows);
  assert.match(readFileSync(restored.logFile, 'utf8'), /archive recovery complete/);
  return restored;
}

type Walship = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface PointInTime {
  /** backup-push --json's output, and what it printed on stderr. */
  backup: { backup_name: string; parts: number };
  pushed: { stdout: string; stderr: string };
  /** A time after the 500 rows of `marker` and before the 200 after them. */
  target: string;
  lastArchived: string;
}

/** Takes a base backup (in several parts), writes 500 rows, notes the time, writes 200 more and archives them all. */
export async function backupThenPassATarget(walship: Walship, primary: PostgresCluster): Promise<PointInTime> {
  const pushed = await walship(['backup-push', '--json']);
  assert.equal(pushed.code, 0, pushed.stderr);
  const backup = JSON.parse(pushed.stdout) as PointInTime['backup'];
  assert.ok(backup.parts >= 2, `expected several parts, got ${backup.parts}`);
  await primary.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 500) g');
  const target = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  await primary.sql('INSERT INTO marker SELECT g FROM generate_series(501, 700) g');
  const lastArchived = await primary.switchAndWaitArchived();
  return { backup, pushed, target, lastArchived };
}

/** backup-fetch of the latest backup to `target` into `dataDir`, started and promoted: exactly the 500 rows are back. */
export async function restoreToTarget(walship: Walship, dataDir: string, root: string, target: string): Promise<{ restored: PostgresCluster; fetched: { stdout: string; stderr: string } }> {
  const fetched = await walship(['backup-fetch', dataDir, 'LATEST', '--recovery-target-time', target, '--recovery-target-action', 'promote']);
  assert.equal(fetched.code, 0, fetched.stderr);
  const restored = await PostgresCluster.adopt(dataDir, root, { settings: { archive_mode: 'off' } });
  await restored.start();
  await restored.waitPromoted();
  assert.equal(await restored.sql('SELECT count(*) FROM marker'), '500');
  assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '100000');
  return { restored, fetched };
}
