// The quick start, end to end on local file storage: a throwaway PostgreSQL
// archives its WAL with walship, walship backup-push takes a base backup,
// more data is written, a point in time is noted, then a mistake deletes
// rows. walship backup-fetch restores the cluster to that point in time (the
// restored server replays the archive with walship wal-fetch), and the row
// counts prove that everything up to the point, and nothing after, is back.
// Last, walship drill proves the backup the way cron would, weekly: restored
// into a scratch server, recovered to the end of the archive, checked, thrown
// away; the demo prints its RTO.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { libpq } from '../test/support/libpq.ts';
import { walshipBinary, postgresBin } from '../test/support/paths.ts';
import { PostgresCluster } from '../src/postgres/cluster.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../test/support/postgres.ts';
import { giveToPostgres, run } from '../test/support/processes.ts';
import { ensureDebianPackages } from './lib/system-packages.ts';

const say = (text: string) => console.log(`\n==> ${text}`);
const indent = (text: string) => text.trim().split('\n').filter(Boolean).map((line) => `    ${line}`).join('\n');

ensureDebianPackages('postgresql-15');
say('building dist/walship');
execFileSync(process.execPath, [join(import.meta.dirname, 'build.ts')], { stdio: 'inherit' });

const archive = makePostgresOwnedDirectory('walship-demo-archive-');
const restoreRoot = makePostgresOwnedDirectory('walship-demo-restore-');
const env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
let primary: PostgresCluster | undefined;
let restored: PostgresCluster | undefined;

/** Runs walship as the postgres OS user (as cron would), shows its output, fails on a non-zero exit. */
async function walship(args: string[]): Promise<string> {
  console.log(`    $ walship ${args.map((arg) => (arg.includes(' ') ? `"${arg}"` : arg)).join(' ')}`);
  const result = await run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary!) } });
  if (result.stderr.trim()) console.log(indent(result.stderr));
  if (result.stdout.trim()) console.log(indent(result.stdout));
  if (result.code !== 0) throw new Error(`walship ${args[0]} exited ${result.code}`);
  return result.stdout;
}

async function counts(cluster: PostgresCluster) {
  return {
    orders: await cluster.sql('SELECT count(*) FROM demo_orders'),
    history: await cluster.sql('SELECT count(*) FROM pgbench_history'),
  };
}

try {
  say(`1. starting a throwaway PostgreSQL 15 with archive_command = '${walshipBinary} wal-push %p' (archive: ${archive})`);
  primary = await PostgresCluster.init({ ...LOCAL_CLUSTER, env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
  await primary.start();

  say('2. loading data with pgbench (scale 10)');
  await primary.pgbench(['-i', '-s', '10', '-q']);

  say('3. taking a base backup with walship backup-push (pg_basebackup streamed into storage, compressed)');
  await walship(['backup-push']);
  await walship(['backup-list']);

  say('4. writing more (1000 pgbench transactions, 10000 orders), then noting the point in time');
  await primary.pgbench(['-t', '500', '-c', '2', '-N']);
  await primary.sql('CREATE TABLE demo_orders AS SELECT g AS id, now() AS created FROM generate_series(1, 10000) g');
  const expected = await counts(primary);
  const pointInTime = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  console.log(`    point in time: ${pointInTime}: ${expected.orders} orders, ${expected.history} history rows`);

  say('5. writing more again, and then the mistake: DELETE FROM demo_orders');
  await primary.pgbench(['-n', '-t', '250', '-c', '2', '-N']);
  await primary.sql('DELETE FROM demo_orders');
  const now = await counts(primary);
  console.log(`    now: ${JSON.stringify(now)}`);
  const lastSegment = await primary.switchAndWaitArchived();
  console.log(`    archived up to ${lastSegment}`);

  say(`6. restoring to ${pointInTime} with walship backup-fetch (LATEST = newest backup before that time)`);
  const dataDir = join(restoreRoot, 'data');
  await walship(['backup-fetch', dataDir, 'LATEST', '--recovery-target-time', pointInTime, '--recovery-target-action', 'promote']);
  // Started without any walship setting in its environment: restore_command finds them in the data directory.
  restored = await PostgresCluster.adopt(dataDir, restoreRoot, { ...LOCAL_CLUSTER, settings: { archive_mode: 'off' } });
  const started = Date.now();
  await restored.start();
  await restored.waitPromoted();
  console.log(`    recovery replayed the archive with walship wal-fetch in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  say('7. checking the row counts against the point in time');
  const actual = await counts(restored);
  console.log(`    expected ${JSON.stringify(expected)}, restored ${JSON.stringify(actual)}`);
  if (actual.orders !== expected.orders || actual.history !== expected.history) {
    throw new Error(`row counts differ: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
  console.log('    the cluster is back as it was at the point in time, before the mistake');

  say('8. a restore drill of the backup: walship drill restores it into a scratch server (a socket of its own, no archiving), replays the whole archive, checks it and throws it away');
  const checks = join(restoreRoot, 'drill-checks.sql');
  writeFileSync(checks, `-- the newest archived state: the mistake included\nSELECT count(*) = ${now.orders} FROM demo_orders;\nSELECT count(*) = ${now.history} FROM pgbench_history;\n`);
  giveToPostgres(checks);
  await walship(['drill', 'LATEST', '--check-sql', checks]);
  const [reportName] = readdirSync(join(archive, 'walship', 'drills'));
  const report = JSON.parse(readFileSync(join(archive, 'walship', 'drills', reportName!), 'utf8')) as { result: string; rto_seconds: number };
  if (report.result !== 'OK') throw new Error(`the drill's stored report says ${report.result}`);
  say(`demo passed: the point-in-time restore brought the rows back, and the drill proved the backup with an RTO of ${report.rto_seconds.toFixed(1)} s`);
} finally {
  say('9. cleaning up');
  await restored?.destroy();
  await primary?.destroy();
  for (const directory of [archive, restoreRoot]) rmSync(directory, { recursive: true, force: true });
}
