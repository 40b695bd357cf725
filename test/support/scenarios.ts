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
