// Restore drill benchmark: `walship drill`'s RTO broken into restore, replay
// and checks, on a pgbench cluster with WAL archived after its backup, next
// to the same work done by hand: `walship backup-fetch --no-archive`,
// `pg_ctl start` on a socket of its own, waiting (as pg_ctl -w waits) until
// the server is promoted, the same checks (every database connects,
// bt_index_check over every B-tree index, pg_dumpall to /dev/null), then
// stop and remove. Both contenders run as the postgres OS user while the
// production cluster keeps running, alternating round by round; figures are
// medians. The aim (issue 12): the drill adds under 10% to the hand-run work.
//
//   node scripts/with-runtime.mjs scripts/bench/drill.ts [--scale 50] [--segments 32] [--rounds 3]
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { libpq } from '../../test/support/libpq.ts';
import { postgresBin, projectRoot } from '../../test/support/paths.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { freePort, giveToPostgres } from '../../test/support/processes.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import { markdownTable, median, rotated, serverEnvironment, timeShell } from './common.ts';

const { values } = parseArgs({
  options: { scale: { type: 'string', default: '50' }, segments: { type: 'string', default: '32' }, rounds: { type: 'string', default: '3' } },
});
const scale = Number(values.scale);
const segments = Number(values.segments);
const rounds = Number(values.rounds);
const SEGMENT_BYTES = 16 << 20;
const log = (message: string) => console.error(`bench: ${message}`);

ensureDebianPackages('postgresql-15');
log('building dist/walship');
execFileSync(process.execPath, [join(projectRoot, 'scripts/build.ts')], { stdio: 'inherit' });

const root = makePostgresOwnedDirectory('walship-bench-drill-');
const walship = join(root, 'walship');
copyFileSync(join(projectRoot, 'dist/walship'), walship);
giveToPostgres(walship);
const archive = makePostgresOwnedDirectory('walship-bench-archive-');
const scratch = join(root, 'scratch');
mkdirSync(scratch);
giveToPostgres(scratch);

const env = serverEnvironment({ PATH: `${postgresBin}:/usr/bin:/bin`, WALG_FILE_PREFIX: archive });

/** Runs `command` with /bin/sh as postgres; returns its wall time in seconds. */
async function timed(command: string): Promise<number> {
  const run = await timeShell(command, { cwd: root, env, scratch: root });
  if (run.code !== 0) throw new Error(`${command} exited ${run.code}: ${run.stderr}`);
  return run.ms / 1000;
}

/** The hand-run's checks, the drill's in plain psql: each database connects, its B-tree indexes pass bt_index_check, and pg_dumpall reads everything. */
const HAND_CHECKS = `set -e
psql -X -A -t -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn" | while read -r db; do
  psql -X -q -d "$db" -c 'SELECT 1' >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION IF NOT EXISTS amcheck' -c "SELECT count(bt_index_check(c.oid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid" >/dev/null
done
pg_dumpall --no-sync -f /dev/null
`;

interface Breakdown {
  restore: number;
  /** Server start to promoted. */
  replay: number;
  /** restore + replay: the RTO. */
  rto: number;
  checks: number;
  /** The whole run, cleanup included. */
  total: number;
}

const cluster = await PostgresCluster.init({
  ...LOCAL_CLUSTER,
  env: { WALG_FILE_PREFIX: archive },
  settings: { archive_mode: 'on', archive_command: `${walship} wal-push %p`, checkpoint_timeout: '30min', max_wal_size: '4GB' },
});
try {
  await cluster.start();
  log(`pgbench -i -s ${scale}`);
  await cluster.pgbench(['-i', '-s', String(scale), '-q']);
  const connection = libpq(cluster);
  const push = await timeShell(`${walship} backup-push`, { cwd: root, env: { ...env, ...connection }, scratch: root });
  if (push.code !== 0) throw new Error(`backup-push exited ${push.code}: ${push.stderr}`);
  const start = parseLsn(await cluster.sql('SELECT pg_current_wal_lsn()'));
  log(`pgbench until ${segments} segments of WAL are written after the backup`);
  while (segmentNumberOfLsn(parseLsn(await cluster.sql('SELECT pg_current_wal_lsn()')), SEGMENT_BYTES) - segmentNumberOfLsn(start, SEGMENT_BYTES) < BigInt(segments)) {
    await cluster.pgbench(['-n', '-N', '-c', '2', '-T', '10']);
  }
  await cluster.switchAndWaitArchived();
  const [backup] = JSON.parse(execFileSync(walship, ['backup-list', '--json'], { env: { ...process.env, WALG_FILE_PREFIX: archive } }).toString()) as { backup_name: string; uncompressed_size: number }[];

  const reportFile = join(root, 'drill.out');
  const drill = async (): Promise<Breakdown> => {
    const total = await timed(`${walship} drill LATEST --scratch ${scratch} --json >${reportFile}`);
    const output = readFileSync(reportFile, 'utf8');
    const report = JSON.parse(output.slice(output.indexOf('\n') + 1)) as Record<string, number | string>;
    if (report.result !== 'OK') throw new Error(`the drill did not pass: ${output.split('\n')[0]}`);
    const seconds = (name: string) => Number(report[name]);
    return { restore: seconds('restore_seconds'), replay: seconds('replay_seconds'), rto: seconds('rto_seconds'), checks: seconds('checks_seconds'), total };
  };

  const hand = join(root, 'hand');
  const handRun = async (): Promise<Breakdown> => {
    const port = await freePort();
    const started = performance.now();
    const restore = await timed(`rm -rf ${hand} && mkdir -m 700 ${hand} && ${walship} backup-fetch --no-archive ${hand}/data LATEST`);
    // pg_ctl -w would return at consistency (status "standby"): wait as it waits, for the pid file's "ready", which with hot_standby off comes with promotion.
    const replay = await timed(
      `pg_ctl -D ${hand}/data -l ${hand}/server.log -W -o "-c listen_addresses='' -c unix_socket_directories=${hand} -c port=${port} -c hot_standby=off" start >/dev/null && ` +
        `until sed -n 8p ${hand}/data/postmaster.pid 2>/dev/null | grep -q '^ready'; do sleep 0.1; done`,
    );
    const checks = await timed(`export PGHOST=${hand} PGPORT=${port} PGUSER=postgres; ${HAND_CHECKS}`);
    await timed(`pg_ctl -D ${hand}/data -m fast -w stop >/dev/null && rm -rf ${hand}`);
    return { restore, replay, rto: restore + replay, checks, total: (performance.now() - started) / 1000 };
  };

  const contenders = [
    { name: 'walship drill', run: drill },
    { name: 'by hand: backup-fetch + pg_ctl start + checks', run: handRun },
  ];
  const results = new Map<string, Breakdown[]>(contenders.map((contender) => [contender.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const contender of rotated(contenders, round)) {
      const result = await contender.run();
      results.get(contender.name)!.push(result);
      log(`round ${round + 1}: ${contender.name}: ${Object.entries(result).map(([name, value]) => `${name} ${value.toFixed(2)} s`).join(', ')}`);
    }
  }

  const medians = (name: string) => {
    const runs = results.get(name)!;
    const of = (field: keyof Breakdown) => median(runs.map((run) => run[field]));
    return { restore: of('restore'), replay: of('replay'), rto: of('rto'), checks: of('checks'), total: of('total') };
  };
  const [drillName, handName] = contenders.map((contender) => contender.name) as [string, string];
  const ours = medians(drillName);
  const theirs = medians(handName);
  const added = (field: keyof Breakdown) => `${(((ours[field] - theirs[field]) / theirs[field]) * 100).toFixed(1)}%`;
  const row = (name: string, figures: Breakdown) => [name, ...(['restore', 'replay', 'rto', 'checks', 'total'] as const).map((field) => `${figures[field].toFixed(2)} s`)];
  console.log(
    [
      `Restore drill: pgbench scale ${scale}, backup ${backup!.backup_name} of ${(backup!.uncompressed_size / 2 ** 20).toFixed(0)} MiB, ${segments} segments written after it;`,
      `${rounds} rounds, medians. RTO = restore + replay (server start to promoted); total = the whole run, the server's stop and the removal of its directory included.`,
      '',
      ...markdownTable(['contender', 'restore', 'replay', 'RTO', 'checks', 'total'], [
        row(drillName, ours),
        row(handName, theirs),
        ['the drill adds', added('restore'), added('replay'), added('rto'), added('checks'), added('total')],
      ]),
    ].join('\n'),
  );
} finally {
  await cluster.destroy();
  rmSync(archive, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
}
