// The quick start, end to end on local file storage: a throwaway PostgreSQL
// archives its WAL with walship, a base backup is taken, more data is written,
// the primary is lost, and the backup is restored with walship wal-fetch.
// Every step prints what it does; the run ends by checking the row counts.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { makePostgresOwnedDirectory, PostgresCluster } from '../test/support/postgres.ts';
import { walshipBinary } from '../test/support/paths.ts';
import { ensureDebianPackages } from './lib/system-packages.ts';

const say = (text: string) => console.log(`\n==> ${text}`);

ensureDebianPackages('postgresql-15');
say('building dist/walship');
execFileSync(process.execPath, [join(import.meta.dirname, 'build.ts')], { stdio: 'inherit' });

const archive = makePostgresOwnedDirectory('walship-demo-archive-');
const restoreRoot = makePostgresOwnedDirectory('walship-demo-restore-');
const env = { WALG_FILE_PREFIX: archive };
let primary: PostgresCluster | undefined;
let restored: PostgresCluster | undefined;
try {
  say(`starting a throwaway PostgreSQL 15 with archive_command = '${walshipBinary} wal-push %p' (archive: ${archive})`);
  primary = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
  await primary.start();

  say('loading data with pgbench (scale 10)');
  await primary.pgbench(['-i', '-s', '10', '-q']);

  say('taking a base backup (pg_basebackup -X none: its WAL comes from the archive)');
  await primary.client('pg_basebackup', ['-D', join(restoreRoot, 'data'), '-X', 'none', '-c', 'fast']);

  say('writing more: 2000 pgbench transactions and a table of 10000 rows');
  await primary.pgbench(['-t', '1000', '-c', '2', '-N']);
  await primary.sql('CREATE TABLE demo_orders AS SELECT g AS id, now() AS created FROM generate_series(1, 10000) g');
  const expected = {
    orders: await primary.sql('SELECT count(*) FROM demo_orders'),
    history: await primary.sql('SELECT count(*) FROM pgbench_history'),
  };
  const lastSegment = await primary.switchAndWaitArchived();
  console.log(`    archived up to ${lastSegment}; expecting ${expected.orders} orders and ${expected.history} history rows`);

  say('losing the primary (immediate stop: nothing more gets archived)');
  await primary.stop('immediate');

  say(`restoring the base backup with restore_command = '${walshipBinary} wal-fetch %f %p'`);
  restored = await PostgresCluster.adopt(join(restoreRoot, 'data'), restoreRoot, {
    env,
    settings: { restore_command: `${walshipBinary} wal-fetch %f %p`, archive_mode: 'off' },
  });
  restored.writeFile('recovery.signal', '');
  const started = Date.now();
  await restored.start();
  await restored.waitPromoted();
  console.log(`    recovery finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const actual = {
    orders: await restored.sql('SELECT count(*) FROM demo_orders'),
    history: await restored.sql('SELECT count(*) FROM pgbench_history'),
  };
  say(`restored cluster has ${actual.orders} orders and ${actual.history} history rows`);
  if (actual.orders !== expected.orders || actual.history !== expected.history) {
    throw new Error(`row counts differ: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
  say('demo passed: every archived row came back');
} finally {
  say('cleaning up');
  await restored?.destroy();
  await primary?.destroy();
  for (const directory of [archive, restoreRoot]) rmSync(directory, { recursive: true, force: true });
}
