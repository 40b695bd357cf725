/**
 * Copies (issue 15), two measurements:
 *
 * 1. `walship copy` throughput from file storage to s3rver next to
 *    `rclone copy` (Debian's rclone) of the same objects to the same s3rver,
 *    in the same run: a base backup of the fixture cluster (pgbench -i), and
 *    200 segments of its WAL, each in an archive of its own on the same file
 *    system. Every run copies into a new, empty prefix; contenders alternate
 *    in rotated order. rclone leaves out walship's hidden metadata tree
 *    (`.walship/`), whose content walship sends as object metadata instead.
 * 2. The foreground cost of wal-push with a copy configured: one 16 MiB
 *    segment, a whole process as archive_command runs it, with no copy, with
 *    a copy on s3rver, and with a copy nobody answers (a closed port), the
 *    three interleaved in rotated order. The forwarder it starts runs
 *    meanwhile (on the same two cores); with a reachable copy the bench also
 *    notes how soon each segment reached it.
 */
import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Config } from '../../src/config/config.ts';
import { openStorage } from '../../src/storage/open.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { freePort } from '../../src/util/net.ts';
import { helperPidFiles, spoolNextTo } from '../../src/wal/spool.ts';
import { giveToPostgres, pidInFile, run } from '../../test/support/processes.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import {
  type BenchContext,
  type BenchReport,
  fixed,
  markdownTable,
  median,
  postgresDirectory,
  quantile,
  ratio,
  rotated,
  serverEnvironment,
  timeShell,
  writePostgresFile,
} from './common.ts';
import type { WalFixture } from './fixture.ts';
import type { Target } from './targets.ts';

interface CopyContender {
  name: string;
  /** Copies `source` (a directory) into a new prefix `prefix`. */
  copy(source: string, prefix: string): Promise<Timing>;
}

/** Bytes of the objects an archive directory holds, its hidden metadata tree left out. */
function storedBytes(directory: string): number {
  let bytes = 0;
  for (const entry of readdirSync(directory, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isFile() && !path.includes('/.walship/')) bytes += statSync(path).size;
  }
  return bytes;
}

interface Timing {
  ms: number;
  /** CPU time of the process, user and system, in ms (GNU time). */
  cpuMs: number;
  /** CPU time the store's server (s3rver) spent meanwhile, in ms. */
  serverCpuMs?: number;
}

/** Runs a whole process as postgres; its wall time, and its CPU time as GNU time counts it. */
async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timing> {
  const started = process.hrtime.bigint();
  const result = await run('/usr/bin/time', ['-f', 'cpu %U %S', command, ...args], { env, asPostgres: true, timeoutMs: 1_800_000 });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  const [, user, system] = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(result.stderr) ?? [];
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, cpuMs: (Number(user) + Number(system)) * 1000 };
}

/** Archives: `wal` with 200 (or the fixture's) segments pushed by walship, `backup` with one base backup. */
async function sourceArchives(context: BenchContext, fixture: WalFixture, home: string, segments: string[]): Promise<{ wal: string; backup: string }> {
  const wal = postgresDirectory(join(home, 'source-wal'));
  const dataDir = postgresDirectory(join(home, 'push-data'));
  postgresDirectory(join(dataDir, 'pg_wal'));
  context.log(`copy: pushing ${segments.length} segments into a file archive`);
  for (const segment of segments) {
    copyFileSync(join(fixture.cluster.dataDir, 'pg_wal', segment), join(dataDir, 'pg_wal', segment));
    giveToPostgres(join(dataDir, 'pg_wal', segment));
  }
  for (let start = 0; start < segments.length; start += 2) {
    await Promise.all(segments.slice(start, start + 2).map((segment) =>
      timed(context.walship, ['wal-push', join(dataDir, 'pg_wal', segment)], serverEnvironment({ WALG_FILE_PREFIX: wal }))));
  }
  rmSync(dataDir, { recursive: true, force: true });
  const backup = postgresDirectory(join(home, 'source-backup'));
  context.log('copy: backup-push of the fixture cluster into a file archive');
  await timed(context.walship, ['backup-push'], {
    ...serverEnvironment({ WALG_FILE_PREFIX: backup, PGHOST: fixture.cluster.root, PGPORT: String(fixture.cluster.port), PGUSER: 'postgres' }),
    PATH: `/usr/lib/postgresql/15/bin:${process.env.PATH}`,
  });
  return { wal, backup };
}

/** rclone's S3 remote for the s3rver target, from walship's settings for it. */
function rcloneEnvironment(settings: Record<string, string>): Record<string, string> {
  return {
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: settings.AWS_ENDPOINT!,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: settings.AWS_ACCESS_KEY_ID!,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: settings.AWS_SECRET_ACCESS_KEY!,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
    RCLONE_CA_CERT: settings.WALG_S3_CA_CERT_FILE ?? '',
  };
}

export async function benchCopy(context: BenchContext, fixture: WalFixture, target: Target): Promise<BenchReport> {
  ensureDebianPackages('rclone');
  const home = postgresDirectory(join(context.root, 'copy'));
  const segments = fixture.segments.slice(0, context.quick ? 40 : 200);
  const sources = await sourceArchives(context, fixture, home, segments);
  const bucketPrefix = (prefix: string) => /^s3:\/\/([^/]+)\/(.*)$/.exec(target.walshipSettings(prefix).WALG_S3_PREFIX!)!;
  /** Every run copies into a prefix of its own: rclone would skip what an earlier run copied. */
  let runs = 0;
  // walship, then each other build or configuration of it (--baseline REV, --variant), then rclone.
  const walships = [undefined, ...context.variants].map((variant): CopyContender => ({
    name: `walship copy${variant ? ` [${variant.name}]` : ''}`,
    copy: (source, prefix) => {
      const from = writePostgresFile(join(home, `from-${prefix}.json`), JSON.stringify({ WALG_FILE_PREFIX: source }));
      const to = writePostgresFile(join(home, `to-${prefix}.json`), JSON.stringify({ ...target.walshipSettings(prefix), ...variant?.settings }));
      return timed(variant?.walship ?? context.walship, ['copy', '--from', from, '--to', to], serverEnvironment(variant?.settings));
    },
  }));
  const rclones = [4, 16].map((transfers): CopyContender => ({
    name: `rclone copy --transfers ${transfers}${transfers === 4 ? ' (its default)' : ''}`,
    copy: (source, prefix) => {
      const [, bucket, path] = bucketPrefix(prefix);
      return timed('rclone', ['copy', source, `bench:${bucket}/${path}`, '--exclude', '.walship/**', '--transfers', String(transfers), '--s3-no-check-bucket'], {
        ...serverEnvironment(rcloneEnvironment(target.walshipSettings(prefix))),
        HOME: home,
      });
    },
  }));
  const contenders = [...walships, ...rclones];
  const datasets = [
    { name: 'a base backup', directory: sources.backup },
    { name: `${segments.length} WAL segments`, directory: sources.wal },
  ];
  const rounds = Math.max(context.rounds, context.quick ? 1 : 3);
  const rows: string[][] = [];
  const summary: string[] = [];
  const serverCpu = () => (target.serverCpuSeconds?.() ?? 0) * 1000;
  for (const dataset of datasets) {
    const bytes = storedBytes(dataset.directory);
    const times = new Map<string, Timing[]>(contenders.map((contender) => [contender.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const contender of rotated(contenders, round)) {
        context.log(`copy: ${dataset.name} (${fixed(bytes / 2 ** 20)} MiB) with ${contender.name}, round ${round + 1}`);
        const serverBefore = serverCpu();
        const timing = await contender.copy(dataset.directory, `copy-${runs++}`);
        times.get(contender.name)!.push({ ...timing, serverCpuMs: serverCpu() - serverBefore });
      }
    }
    const medianOf = (name: string, measure: (timing: Timing) => number) => median(times.get(name)!.map(measure));
    const rate = (name: string) => bytes / 2 ** 20 / (medianOf(name, (timing) => timing.ms) / 1000);
    /** Each round's walship/rclone speed ratio (the same round ran under the same load), then their median. */
    const roundRatios = (walship: string, other: string) => times.get(walship)!.map((timing, round) => times.get(other)![round]!.ms / timing.ms);
    for (const contender of contenders) {
      rows.push([
        dataset.name,
        contender.name,
        fixed(medianOf(contender.name, (timing) => timing.ms) / 1000, 2),
        fixed(rate(contender.name)),
        contender === contenders[0] ? '1.00x' : ratio(rate(contenders[0]!.name), rate(contender.name)),
        fixed(medianOf(contender.name, (timing) => timing.cpuMs) / 1000, 2),
        fixed(medianOf(contender.name, (timing) => timing.serverCpuMs ?? 0) / 1000, 2),
      ]);
    }
    for (const walship of walships) {
      const perRound = roundRatios(walship.name, rclones[0]!.name);
      summary.push(
        `- ${dataset.name}: ${walship.name} / rclone copy = **${ratio(rate(walship.name), rate(rclones[0]!.name))}** (rclone's default 4 transfers; rounds ${perRound.map((value) => `${fixed(value, 2)}x`).join(', ')}), ` +
          `**${ratio(rate(walship.name), rate(rclones[1]!.name))}** (16, walship's default)`,
      );
    }
  }

  const foreground = await benchForegroundCost(context, fixture, target, home);
  return {
    title: 'copy: walship copy vs rclone copy to s3rver, and wal-push with a copy configured',
    lines: [
      `File storage to s3rver (behind the bench's TLS proxy), ${rounds} round${rounds === 1 ? '' : 's'} per contender, rotated, each into a new prefix; median wall time of the whole process, and of its CPU time and s3rver's. ` +
        'walship copy lists both sides, relays each object as stored and checks it on arrival (WAL: the CRC-32 of its bytes that file storage recorded; backup parts: SHA-256); rclone computes an MD5 per object.',
      '',
      ...markdownTable(['data', 'contender', 'median s', 'MiB/s', 'walship speed / this', 'CPU s (user + system)', 's3rver CPU s'], rows),
      '',
      'Aim: walship copy at least 1.0x rclone copy.',
      ...summary,
      '',
      ...foreground,
    ],
  };
}

/** wal-push's foreground time without a copy, with a copy on s3rver, and with a copy that never answers. */
async function benchForegroundCost(context: BenchContext, fixture: WalFixture, target: Target, home: string): Promise<string[]> {
  const archive = postgresDirectory(join(home, 'wal-push-archive'));
  const segments = fixture.bulk.slice(0, 8).concat(fixture.oltp.slice(0, 8));
  /** A data directory of its own for each variant, as for a cluster of its own: its own spool and forwarder. */
  const dataDirectory = (name: string) => {
    const dataDir = postgresDirectory(join(home, `wal-push-${name}`));
    postgresDirectory(join(dataDir, 'pg_wal', 'archive_status'));
    for (const segment of segments) {
      copyFileSync(join(fixture.cluster.dataDir, 'pg_wal', segment), join(dataDir, 'pg_wal', segment));
      giveToPostgres(join(dataDir, 'pg_wal', segment));
    }
    return dataDir;
  };
  const reachable = writePostgresFile(join(home, 'copy-s3.json'), JSON.stringify(target.walshipSettings('forwarded')));
  const closed = writePostgresFile(join(home, 'copy-closed.json'), JSON.stringify({ ...target.walshipSettings('closed'), AWS_ENDPOINT: `https://127.0.0.1:${await freePort()}` }));
  const variants = [
    { name: 'no copy', copies: undefined, dataDir: dataDirectory('none') },
    { name: 'a copy on s3rver', copies: reachable, dataDir: dataDirectory('reachable') },
    { name: 'a copy nobody answers', copies: closed, dataDir: dataDirectory('closed') },
  ];
  const copy = await openStorage(storageSpecFrom(new Config(target.walshipSettings('forwarded'))));
  const iterations = context.quick ? 12 : 40;
  const samples = new Map<string, number[]>(variants.map((variant) => [variant.name, []]));
  const forwarded: number[] = [];
  context.log(`copy: wal-push foreground cost, ${iterations} runs per variant`);
  try {
    for (let round = 0; round < 2 + iterations; round++) {
      const segment = segments[round % segments.length]!;
      for (const variant of rotated(variants, round)) {
        const env = serverEnvironment({ WALG_FILE_PREFIX: archive, ...(variant.copies ? { WALSHIP_COPIES: variant.copies } : {}) });
        const measured = await timeShell(`${context.walship} wal-push pg_wal/${segment}`, { cwd: variant.dataDir, env, scratch: home });
        if (measured.code !== 0) throw new Error(`wal-push with ${variant.name} exited ${measured.code}: ${measured.stderr}`);
        if (round >= 2) samples.get(variant.name)!.push(measured.ms);
        if (variant.copies === reachable) forwarded.push(await forwardDelay(copy, segment));
        rmSync(join(archive, 'wal_005', `${segment}.zst`));
        rmSync(join(archive, '.walship', 'metadata', 'wal_005', `${segment}.zst.json`), { force: true });
      }
    }
  } finally {
    // The forwarders outlive the runs: stop them, by their pid files, before the scratch directory goes.
    for (const variant of variants) for (const pid of helperPidFiles(spoolNextTo(variant.dataDir)).map(pidInFile)) if (pid) process.kill(pid, 'SIGKILL');
  }
  const base = median(samples.get('no copy')!);
  return [
    `**wal-push with a copy configured**: one 16 MiB segment, file storage, ${iterations} runs per variant after 2 warm-ups, interleaved in rotated order; whole processes timed from spawn to exit, as archive_command runs them.`,
    '',
    ...markdownTable(
      ['copy', 'median ms', 'p90 ms', 'added to the median'],
      variants.map((variant) => {
        const ms = samples.get(variant.name)!;
        return [variant.name, fixed(median(ms)), fixed(quantile(ms, 0.9)), variant.copies ? `${fixed(median(ms) - base)} ms` : ''];
      }),
    ),
    '',
    `Aim: no added cost measurable on the foreground path. With the copy on s3rver, each segment reached it a median ${fixed(median(forwarded))} ms (p90 ${fixed(quantile(forwarded, 0.9))} ms) after wal-push exited.`,
  ];
}

/** How long after wal-push exits the forwarder has the segment at the copy; then it is removed there again. */
async function forwardDelay(copy: Storage, segment: string): Promise<number> {
  const started = Date.now();
  while (!(await copy.head(`wal_005/${segment}.zst`))) {
    if (Date.now() - started > 60_000) throw new Error(`${segment} did not reach the copy within 60 s`);
    await sleep(20);
  }
  const delay = Date.now() - started;
  await copy.delete(`wal_005/${segment}.zst`);
  return delay;
}
