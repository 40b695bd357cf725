// Base backup benchmark: backup-push and backup-fetch throughput and peak RSS
// on a pgbench cluster, in the same run as the raw pipe
// `pg_basebackup -Ft -D - -X fetch | zstd -1 > file` (and its extraction
// `zstd -dc | tar -x`) and pgBackRest 2.45 (`backup --type=full` and
// `restore`, posix repository, zst level 1). Every contender runs as the
// postgres OS user, alternating round by round; figures are medians.
//
//   node scripts/with-runtime.mjs scripts/bench/backup.ts [--scale 50] [--rounds 3]
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { libpq } from '../../test/support/libpq.ts';
import { postgresBin, projectRoot } from '../../test/support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../../test/support/postgres.ts';
import { giveToPostgres, isRoot, POSTGRES_USER } from '../../test/support/processes.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' } } });
const scale = Number(values.scale);
const rounds = Number(values.rounds);
const log = (message: string) => console.error(`bench: ${message}`);

ensureDebianPackages('postgresql-15', 'pgbackrest', 'zstd');
log('building dist/walship');
execFileSync(process.execPath, [join(projectRoot, 'scripts/build.ts')], { stdio: 'inherit' });

const root = makePostgresOwnedDirectory('walship-bench-backup-');
const walship = join(root, 'walship');
copyFileSync(join(projectRoot, 'dist/walship'), walship);
giveToPostgres(walship);
const identity = isRoot ? { uid: Number(execFileSync('id', ['-u', POSTGRES_USER])), gid: Number(execFileSync('id', ['-g', POSTGRES_USER])) } : {};

interface Run {
  ms: number;
  rssMiB: number;
}

/** Runs `command` with /bin/sh as postgres; GNU time gives the peak RSS of the largest process it waited for. */
async function measure(command: string, env: Record<string, string>): Promise<Run> {
  const rssFile = join(root, 'rss');
  const started = process.hrtime.bigint();
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, '/bin/sh', '-c', command], {
      cwd: root,
      env: { PATH: `${postgresBin}:/usr/bin:/bin`, HOME: root, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
      ...identity,
    });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ code: exitCode ?? 1, stderr: err }));
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (code !== 0) throw new Error(`${command} exited ${code}: ${stderr}`);
  return { ms, rssMiB: Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1)) / 1024 };
}

const median = (runs: number[]) => [...runs].sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;

const archive = makePostgresOwnedDirectory('walship-bench-archive-');
const cluster = await PostgresCluster.init({
  env: { WALG_FILE_PREFIX: archive },
  settings: { archive_mode: 'on', archive_command: `${walship} wal-push %p`, checkpoint_timeout: '30min' },
});
try {
  await cluster.start();
  log(`pgbench -i -s ${scale}`);
  await cluster.pgbench(['-i', '-s', String(scale), '-q']);
  await cluster.sql('CHECKPOINT');

  const connection = libpq(cluster);
  const repository = makePostgresOwnedDirectory('walship-bench-pgbackrest-');
  const pgbackrestConfig = (processes: number) => {
    const path = join(repository, `pgbackrest-${processes}.conf`);
    writeFileSync(path, [
      '[global]', `repo1-path=${repository}/repo`, 'repo1-type=posix', 'compress-type=zst', 'compress-level=1',
      `process-max=${processes}`, 'start-fast=y', 'archive-check=n', `lock-path=${repository}`, `log-path=${repository}`,
      `spool-path=${repository}`, 'log-level-console=warn', 'log-level-file=off',
      '[bench]', `pg1-path=${cluster.dataDir}`, `pg1-socket-path=${cluster.root}`, `pg1-port=${cluster.port}`, 'pg1-user=postgres', '',
    ].join('\n'));
    giveToPostgres(path);
    return path;
  };
  const pgbackrest = [1, 2].map(pgbackrestConfig);
  await measure(`pgbackrest --config=${pgbackrest[0]} --stanza=bench stanza-create`, connection);

  const pipeFile = join(root, 'pipe.tar.zst');
  const restoreInto = join(root, 'restore');
  const fresh = `rm -rf ${restoreInto} && mkdir -m 700 ${restoreInto}`;
  const env = { ...connection, WALG_FILE_PREFIX: archive };
  const contenders: { name: string; kind: 'backup' | 'restore'; command: () => string }[] = [
    { name: 'pg_basebackup | zstd -1 > file', kind: 'backup', command: () => `pg_basebackup -D - -Ft -X fetch -c fast | zstd -1 -q -f -o ${pipeFile}` },
    { name: 'walship backup-push', kind: 'backup', command: () => `${walship} backup-push` },
    ...pgbackrest.map((config, index) => ({
      name: `pgbackrest backup (process-max=${index + 1})`,
      kind: 'backup' as const,
      command: () => `pgbackrest --config=${config} --stanza=bench --type=full backup`,
    })),
    { name: 'zstd -dc file | tar -x', kind: 'restore', command: () => `${fresh} && zstd -dc ${pipeFile} | tar -xf - -C ${restoreInto}` },
    { name: 'walship backup-fetch', kind: 'restore', command: () => `rm -rf ${restoreInto} && ${walship} backup-fetch ${restoreInto} LATEST --no-recovery-config` },
    ...pgbackrest.map((config, index) => ({
      name: `pgbackrest restore (process-max=${index + 1})`,
      kind: 'restore' as const,
      command: () => `${fresh} && pgbackrest --config=${config} --stanza=bench --pg1-path=${restoreInto} restore`,
    })),
  ];
  const results = new Map<string, Run[]>(contenders.map((contender) => [contender.name, []]));
  for (let round = 0; round < rounds; round++) {
    // Backups first (the restores read what they wrote), each group rotated so no contender always goes first.
    for (const kind of ['backup', 'restore'] as const) {
      const group = contenders.filter((contender) => contender.kind === kind);
      for (const contender of [...group.slice(round % group.length), ...group.slice(0, round % group.length)]) {
        const run = await measure(contender.command(), env);
        results.get(contender.name)!.push(run);
        log(`round ${round + 1}: ${contender.name}: ${(run.ms / 1000).toFixed(2)} s, ${run.rssMiB.toFixed(0)} MiB peak RSS`);
      }
    }
  }

  const latest = JSON.parse(execFileSync(walship, ['backup-list', '--json'], { env: { ...process.env, ...env } }).toString()).at(-1);
  const bytes = latest.uncompressed_size as number;
  const pipeRate = bytes / median(results.get('pg_basebackup | zstd -1 > file')!.map((run) => run.ms));
  const fetchBaseline = bytes / median(results.get('zstd -dc file | tar -x')!.map((run) => run.ms));
  const lines = [
    `Base backups: pgbench scale ${scale}, ${(bytes / 2 ** 20).toFixed(0)} MiB backup (tar stream), walship compressed to ${(latest.compressed_size / 2 ** 20).toFixed(0)} MiB (zstd 1),`,
    `${rounds} rounds, medians; throughput = backup size / wall time; ratio = against the raw pipe (backups) or zstd -dc | tar -x (restores).`,
    '',
    '| contender | time | throughput | ratio | peak RSS |',
    '|---|---:|---:|---:|---:|',
    ...contenders.map((contender) => {
      const runs = results.get(contender.name)!;
      const ms = median(runs.map((run) => run.ms));
      const rate = bytes / ms;
      const baseline = contender.kind === 'backup' ? pipeRate : fetchBaseline;
      return `| ${contender.name.replaceAll('|', '\\|')} | ${(ms / 1000).toFixed(2)} s | ${((rate * 1000) / 2 ** 20).toFixed(0)} MiB/s | ${(rate / baseline).toFixed(2)}x | ${Math.max(...runs.map((run) => run.rssMiB)).toFixed(0)} MiB |`;
    }),
  ];
  console.log(lines.join('\n'));
  rmSync(repository, { recursive: true, force: true });
} finally {
  await cluster.destroy();
  rmSync(archive, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
}
