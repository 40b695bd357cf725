/**
 * The fixed cost of a command that reaches S3: `wal-push` of one real 16 MiB
 * segment (a fresh prefix each run, so every push is an upload) and
 * `backup-list`, on s3rver next to file storage, as whole processes timed
 * by GNU time (wall, CPU, peak RSS) the way PostgreSQL runs archive_command.
 * Builds and backends are interleaved run by run, each taking every place
 * in turn, so machine noise falls on all alike.
 *
 *   node scripts/with-runtime.mjs scripts/bench/s3-start.ts [--rounds N] [--baseline FILE]
 *
 * --baseline FILE: another walship binary (say main's), measured in the same runs.
 */
import { copyFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { walshipBinary } from '../../test/support/paths.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { giveToPostgres } from '../../test/support/processes.ts';
import { fixed, markdownTable, type Measured, median, postgresDirectory, rotated, serverEnvironment, timeShell } from './common.ts';

const { values: options } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, baseline: { type: 'string' } } });
const rounds = Number(options.rounds);
const log = (message: string) => process.stderr.write(`bench s3-start: ${message}\n`);

/** One real segment: the first WAL file of a fresh cluster, archived with cp. */
async function archiveOneSegment(into: string): Promise<string> {
  const cluster = await PostgresCluster.init({ ...LOCAL_CLUSTER, settings: { archive_mode: 'on', archive_command: `cp %p ${into}/%f` } });
  try {
    await cluster.start();
    await cluster.switchAndWaitArchived();
  } finally {
    await cluster.destroy();
  }
  return readdirSync(into).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort()[0]!;
}

const root = makePostgresOwnedDirectory('walship-bench-s3-start-');
let s3rver: Emulator | undefined;
try {
  const segmentsDir = postgresDirectory(join(root, 'segments'));
  const segment = await archiveOneSegment(segmentsDir);
  const dataDir = postgresDirectory(join(root, 'data'));
  postgresDirectory(join(dataDir, 'pg_wal'));
  copyFileSync(join(segmentsDir, segment), join(dataDir, 'pg_wal', segment));
  giveToPostgres(join(dataDir, 'pg_wal', segment));

  // Private copies the postgres user can run.
  const builds = [{ name: 'this build', path: walshipBinary }, ...(options.baseline ? [{ name: 'baseline', path: options.baseline }] : [])].map((build, index) => {
    const path = join(root, `walship-${index}`);
    copyFileSync(build.path, path);
    giveToPostgres(path);
    return { name: build.name, path };
  });
  s3rver = await startS3rver();
  const fileArchive = postgresDirectory(join(root, 'file-archive'));
  const backends = [
    { name: 'file', settings: (prefix: string) => ({ WALG_FILE_PREFIX: postgresDirectory(join(fileArchive, prefix)) }) },
    { name: 's3rver', settings: (prefix: string) => s3rver!.settings(prefix) },
  ];
  const commands = [
    { name: 'wal-push', args: `wal-push pg_wal/${segment}` },
    { name: 'backup-list', args: 'backup-list' },
  ];
  const contenders = builds.flatMap((build) => backends.map((backend) => ({ build, backend, label: `${build.name}, ${backend.name}` })));
  const samples = new Map<string, Measured[]>();
  log(`${rounds} rounds x ${contenders.length} contenders x ${commands.length} commands`);
  for (let round = 0; round < rounds; round++) {
    for (const [index, contender] of rotated(contenders, round).entries()) {
      const env = serverEnvironment({ ...contender.backend.settings(`round-${round}-${index}`), WALSHIP_PREFETCH: 'false' });
      for (const command of commands) {
        const measured = await timeShell(`${contender.build.path} ${command.args}`, { cwd: dataDir, env, scratch: root });
        if (measured.code !== 0) throw new Error(`${contender.label}: ${command.args} exited ${measured.code}: ${measured.stderr}`);
        const key = `${command.name}|${contender.label}`;
        samples.set(key, [...(samples.get(key) ?? []), measured]);
      }
    }
  }
  const rows = commands.flatMap((command) =>
    contenders.map((contender) => {
      const runs = samples.get(`${command.name}|${contender.label}`)!;
      const rssMiB = runs.map((run) => run.maxRssKiB / 1024);
      return [command.name, contender.label, fixed(median(runs.map((run) => run.ms)), 0), fixed(median(runs.map((run) => run.cpuMs)), 0), fixed(median(rssMiB), 0), fixed(Math.max(...rssMiB), 0), String(runs.length)];
    }),
  );
  console.log(
    [
      `One real 16 MiB segment, ${rounds} interleaved rounds, whole processes (GNU time):`,
      '',
      ...markdownTable(['command', 'build, storage', 'median ms', 'median CPU ms', 'median RSS MiB', 'max RSS MiB', 'runs'], rows),
    ].join('\n'),
  );
} finally {
  await s3rver?.stop();
  rmSync(root, { recursive: true, force: true });
}
