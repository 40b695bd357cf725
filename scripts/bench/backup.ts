// Base backup benchmark: backup-push and backup-fetch throughput and peak RSS
// on a pgbench cluster, without and with a libsodium key (encrypted, into an
// archive of its own), in the same run as the raw pipe
// `pg_basebackup -Ft -D - -X fetch | zstd -1 > file` (and its extraction
// `zstd -dc | tar -x`) and pgBackRest 2.45 (`backup --type=full` and
// `restore`, posix repository, zst level 1); and backup-verify of the same
// backup next to backup-fetch. Every contender runs as the postgres OS user,
// alternating round by round; figures are medians.
//
//   node scripts/with-runtime.mjs scripts/bench/backup.ts [--scale 50] [--rounds 3]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { libpq } from '../../test/support/libpq.ts';
import { postgresBin, projectRoot } from '../../test/support/paths.ts';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { giveToPostgres } from '../../test/support/processes.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import { markdownTable, median, ratio, serverEnvironment, timeShell } from './common.ts';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' } } });
const scale = Number(values.scale);
const rounds = Number(values.rounds);
const log = (message: string) => console.error(`bench: ${message}`);
const PIPE = 'pg_basebackup | zstd -1 > file';
const UNPACK = 'zstd -dc file | tar -x';

ensureDebianPackages('postgresql-15', 'pgbackrest', 'zstd');
log('building dist/walship');
execFileSync(process.execPath, [join(projectRoot, 'scripts/build.ts')], { stdio: 'inherit' });

const root = makePostgresOwnedDirectory('walship-bench-backup-');
const walship = join(root, 'walship');
copyFileSync(join(projectRoot, 'dist/walship'), walship);
giveToPostgres(walship);

interface Run {
  ms: number;
  cpuMs: number;
  rssMiB: number;
}

/** Runs `command` with /bin/sh as postgres; GNU time gives the peak RSS of the largest process it waited for. */
async function measure(command: string, env: Record<string, string>): Promise<Run> {
  const run = await timeShell(command, { cwd: root, env: serverEnvironment({ PATH: `${postgresBin}:/usr/bin:/bin`, ...env }), scratch: root });
  if (run.code !== 0) throw new Error(`${command} exited ${run.code}: ${run.stderr}`);
  return { ms: run.ms, cpuMs: run.cpuMs, rssMiB: run.maxRssKiB / 1024 };
}

const archive = makePostgresOwnedDirectory('walship-bench-archive-');
const encryptedArchive = makePostgresOwnedDirectory('walship-bench-encrypted-');
const ENCRYPTED = `WALG_FILE_PREFIX=${encryptedArchive} WALG_LIBSODIUM_KEY=${randomBytes(32).toString('hex')} WALG_LIBSODIUM_KEY_TRANSFORM=hex`;
const WITH_KEY = 'walship backup-push (libsodium key)';
const FETCH_WITH_KEY = 'walship backup-fetch (libsodium key)';
const cluster = await PostgresCluster.init({
  ...LOCAL_CLUSTER,
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
    { name: PIPE, kind: 'backup', command: () => `pg_basebackup -D - -Ft -X fetch -c fast | zstd -1 -q -f -o ${pipeFile}` },
    { name: 'walship backup-push', kind: 'backup', command: () => `${walship} backup-push` },
    { name: WITH_KEY, kind: 'backup', command: () => `${ENCRYPTED} ${walship} backup-push` },
    ...pgbackrest.map((config, index) => ({
      name: `pgbackrest backup (process-max=${index + 1})`,
      kind: 'backup' as const,
      command: () => `pgbackrest --config=${config} --stanza=bench --type=full backup`,
    })),
    { name: UNPACK, kind: 'restore', command: () => `${fresh} && zstd -dc ${pipeFile} | tar -xf - -C ${restoreInto}` },
    { name: 'walship backup-fetch', kind: 'restore', command: () => `rm -rf ${restoreInto} && ${walship} backup-fetch ${restoreInto} LATEST --no-recovery-config` },
    { name: 'walship backup-verify', kind: 'restore', command: () => `${walship} backup-verify LATEST` },
    { name: FETCH_WITH_KEY, kind: 'restore', command: () => `rm -rf ${restoreInto} && ${ENCRYPTED} ${walship} backup-fetch ${restoreInto} LATEST --no-recovery-config` },
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
        log(`round ${round + 1}: ${contender.name}: ${(run.ms / 1000).toFixed(2)} s, ${(run.cpuMs / 1000).toFixed(2)} s CPU, ${run.rssMiB.toFixed(0)} MiB peak RSS`);
      }
    }
  }

  const latest = JSON.parse(execFileSync(walship, ['backup-list', '--json'], { env: { ...process.env, ...env } }).toString()).at(-1);
  const bytes = latest.uncompressed_size as number;
  const lines = [
    `Base backups: pgbench scale ${scale}, ${(bytes / 2 ** 20).toFixed(0)} MiB backup (tar stream), walship compressed to ${(latest.compressed_size / 2 ** 20).toFixed(0)} MiB (zstd 1),`,
    `${rounds} rounds, medians; throughput = backup size / wall time; ratio = against the raw pipe (backups) or zstd -dc | tar -x (restores).`,
    '',
    ...markdownTable(
      ['contender', 'time', 'throughput', 'ratio', 'CPU time', 'peak RSS'],
      contenders.map((contender) => {
        const runs = results.get(contender.name)!;
        const ms = median(runs.map((run) => run.ms));
        const baselineMs = median(results.get(contender.kind === 'backup' ? PIPE : UNPACK)!.map((run) => run.ms));
        return [
          contender.name.replaceAll('|', '\\|'),
          `${(ms / 1000).toFixed(2)} s`,
          `${((bytes / 2 ** 20) / (ms / 1000)).toFixed(0)} MiB/s`,
          ratio(baselineMs, ms),
          `${(median(runs.map((run) => run.cpuMs)) / 1000).toFixed(2)} s`,
          `${Math.max(...runs.map((run) => run.rssMiB)).toFixed(0)} MiB`,
        ];
      }),
    ),
  ];
  // Rounds alternate the contenders, so each round's pair ran under the same load: compare within rounds.
  const added = (encrypted: string, plain: string, measure: (run: Run) => number) =>
    `${(median(results.get(encrypted)!.map((run, round) => measure(run) / measure(results.get(plain)![round]!) - 1)) * 100).toFixed(1)}%`;
  lines.push(
    '',
    `Encryption adds ${added(WITH_KEY, 'walship backup-push', (run) => run.ms)} of wall time (${added(WITH_KEY, 'walship backup-push', (run) => run.cpuMs)} of CPU time) to backup-push, ` +
      `and ${added(FETCH_WITH_KEY, 'walship backup-fetch', (run) => run.ms)} (${added(FETCH_WITH_KEY, 'walship backup-fetch', (run) => run.cpuMs)} of CPU time) to backup-fetch: ` +
      'medians over the rounds of each round\'s ratio (aim: under 10%, issue 16).',
  );
  const medianMs = (name: string) => median(results.get(name)!.map((run) => run.ms));
  lines.push('', `backup-verify against backup-fetch of the same backup: ${ratio(medianMs('walship backup-fetch'), medianMs('walship backup-verify'))} the throughput.`);
  console.log(lines.join('\n'));
  rmSync(repository, { recursive: true, force: true });
} finally {
  await cluster.destroy();
  rmSync(archive, { recursive: true, force: true });
  rmSync(encryptedArchive, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
}
