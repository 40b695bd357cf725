/**
 * Foreground cost of archiving one 16 MiB segment, as archive_command runs it
 * (a whole process under `/bin/sh -c`, as postgres, cwd = data directory,
 * `%p` = pg_wal/<segment>), on file storage on the same file system:
 *   walship wal-push, without and with a libsodium key (encrypted),
 *   vs   pgbackrest archive-push (zst, same level)
 *   vs the physical floor: zstd -1 to a file, then fsync it (sync FILE).
 * Contenders run interleaved, in rotated order, on the same real segments;
 * each output is removed after its run (outside the timing), so every run
 * archives a new file. The segments are copied into a data directory of their
 * own with an empty archive_status/: no backlog, so walship's look-ahead has
 * nothing to push besides the foreground segment, as on a server that keeps up.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
} from './common.ts';
import { giveToPostgres } from '../../test/support/processes.ts';
import type { WalFixture } from './fixture.ts';
import { configurePgBackRest, createStanza, STANZA } from './pgbackrest.ts';
import { withSettings } from './targets.ts';

/** zstd level for every contender: walship's default. */
export const LEVEL = 1;

/** The encrypted contender's settings: a random key, as `openssl rand -hex 32` makes one. */
const ENCRYPTED: BenchContext['variants'][number] = { name: 'libsodium key', settings: { WALG_LIBSODIUM_KEY: randomBytes(32).toString('hex'), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' } };

interface Contender {
  name: string;
  command(segment: string): string;
  /** The file the run produced (to check it and measure it), then removed. */
  output(segment: string): string;
  cleanup(segment: string): void;
}

interface Sample {
  ms: number;
  cpuMs: number;
  rssKiB: number;
  bytes: number;
}

/** Evenly spread picks, so samples cover the whole run of a workload. */
function spread<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  return Array.from({ length: count }, (_, index) => items[Math.floor(((index + 0.5) * items.length) / count)]!);
}

export async function benchWalPush(context: BenchContext, fixture: WalFixture): Promise<BenchReport> {
  const { cluster } = fixture;
  const home = postgresDirectory(join(context.root, 'wal-push'));
  const walshipArchive = postgresDirectory(join(home, 'walship-archive'));
  const floorOut = postgresDirectory(join(home, 'zstd-out'));
  const pgbackrest = configurePgBackRest({ home: join(home, 'pgbackrest'), dataDir: cluster.dataDir, socketDir: cluster.root, port: cluster.port, compressLevel: LEVEL });
  await createStanza(pgbackrest, cluster);
  const pgbackrestArchive = join(pgbackrest.repo!, 'archive', STANZA, '15-1');
  const workloads = [
    { name: 'bulk load (pgbench -i)', segments: spread(fixture.bulk, 8) },
    { name: 'OLTP updates (pgbench, FPIs)', segments: spread(fixture.oltp, 8) },
  ].filter((workload) => workload.segments.length > 0);
  const dataDir = postgresDirectory(join(home, 'data'));
  const walDir = postgresDirectory(join(dataDir, 'pg_wal'));
  postgresDirectory(join(walDir, 'archive_status'));
  for (const segment of workloads.flatMap((workload) => workload.segments)) {
    copyFileSync(join(cluster.dataDir, 'pg_wal', segment), join(walDir, segment));
    giveToPostgres(join(walDir, segment));
  }

  const pgbackrestFile = (segment: string): string => {
    const directory = join(pgbackrestArchive, segment.slice(0, 16));
    const name = readdirSync(directory).find((entry) => entry.startsWith(`${segment}-`));
    if (!name) throw new Error(`pgbackrest stored no ${segment} in ${directory}`);
    return join(directory, name);
  };
  // walship, encrypted, then each variant (other settings or another build), each into an archive of its own:
  // an archive records its encryption, and refuses objects stored otherwise.
  const walships: Contender[] = [undefined, ENCRYPTED, ...context.variants].map((variant, index) => {
    const archive = index === 0 ? walshipArchive : postgresDirectory(join(home, `walship-archive-${index}`));
    return {
      name: `walship wal-push${variant ? ` [${variant.name}]` : ''}`,
      command: (segment) => withSettings({ WALG_FILE_PREFIX: archive, ...variant?.settings }, `${variant?.walship ?? context.walship} wal-push pg_wal/${segment}`),
      output: (segment) => join(archive, 'wal_005', `${segment}.zst`),
      cleanup: (segment) => {
        rmSync(join(archive, 'wal_005', `${segment}.zst`));
        rmSync(join(archive, '.walship', 'metadata', 'wal_005', `${segment}.zst.json`), { force: true });
      },
    };
  });
  const contenders: Contender[] = [
    ...walships,
    {
      name: 'pgbackrest archive-push',
      // pgBackRest resolves a relative path against pg1-path (the fixture's data directory): give it the copy's full path.
      command: (segment) => pgbackrest.command(`archive-push ${walDir}/${segment}`),
      output: pgbackrestFile,
      cleanup: (segment) => rmSync(pgbackrestFile(segment)),
    },
    {
      name: `zstd -${LEVEL} + fsync (floor)`,
      command: (segment) => `zstd -${LEVEL} -q -c pg_wal/${segment} > ${floorOut}/${segment}.zst && sync ${floorOut}/${segment}.zst`,
      output: (segment) => join(floorOut, `${segment}.zst`),
      cleanup: (segment) => rmSync(join(floorOut, `${segment}.zst`)),
    },
  ];
  const env = serverEnvironment({ WALG_FILE_PREFIX: walshipArchive, WALG_COMPRESSION_LEVEL: String(LEVEL) });

  const iterations = context.quick ? 12 : 40;
  const warmup = 2;
  const results = new Map<string, Map<string, Sample[]>>();
  for (const workload of workloads) {
    const samples = new Map<string, Sample[]>(contenders.map((contender) => [contender.name, []]));
    results.set(workload.name, samples);
    context.log(`wal-push: ${workload.name}: ${iterations} runs of each contender over ${workload.segments.length} segments`);
    for (let round = 0; round < warmup + iterations; round++) {
      const segment = workload.segments[round % workload.segments.length]!;
      for (const contender of rotated(contenders, round)) {
        const measured = await timeShell(contender.command(segment), { cwd: dataDir, env, scratch: home });
        if (measured.code !== 0) throw new Error(`${contender.name} exited ${measured.code} for ${segment}: ${measured.stderr.trim()}`);
        const output = contender.output(segment);
        const bytes = statSync(output).size;
        contender.cleanup(segment);
        if (round >= warmup) samples.get(contender.name)!.push({ ms: measured.ms, cpuMs: measured.cpuMs, rssKiB: measured.maxRssKiB, bytes });
      }
    }
  }

  const [walship, encrypted, peer, floor] = [walships[0]!, walships[1]!, ...contenders.slice(walships.length)].map((contender) => contender.name) as [string, string, string, string];
  const rows: string[][] = [];
  const chart: { workload: string; contender: string; median: number; p90: number }[] = [];
  for (const [workload, samples] of results) {
    const medians = new Map([...samples].map(([name, list]) => [name, median(list.map((sample) => sample.ms))]));
    for (const [name, list] of samples) {
      const ms = list.map((sample) => sample.ms);
      const p90 = quantile(ms, 0.9);
      chart.push({ workload, contender: name, median: medians.get(name)!, p90 });
      rows.push([
        workload,
        name,
        fixed(medians.get(name)!),
        fixed(p90),
        fixed(median(list.map((sample) => sample.cpuMs))),
        name === walship ? '1.00x' : ratio(medians.get(walship)!, medians.get(name)!),
        fixed(median(list.map((sample) => sample.bytes)) / 2 ** 20, 2),
        fixed(median(list.map((sample) => sample.rssKiB)) / 1024, 0),
      ]);
    }
  }
  const lines = [
    `Foreground time of one archive_command call for a 16 MiB segment, zstd level ${LEVEL} everywhere, file storage on the same file system as pg_wal. ` +
      `${iterations} runs per contender and workload (after ${warmup} warm-up runs), interleaved in rotated order; whole processes timed from spawn to exit.`,
    '',
    ...markdownTable(['workload', 'contender', 'median ms', 'p90 ms', 'median CPU ms', 'walship / this (median)', 'stored MiB', 'peak RSS MiB'], rows),
    '',
    'Aims: walship at most 1.2x pgBackRest (issue 2) and at most 1.2x the zstd + fsync floor (issue 5); encryption adds under 10% (issue 16).',
  ];
  for (const workload of results.keys()) {
    const samples = results.get(workload)!;
    const medians = new Map([...samples].map(([name, list]) => [name, median(list.map((sample) => sample.ms))]));
    // Each round ran every contender on the same segment, one after the other: compare within rounds.
    const added = (measure: (sample: Sample) => number) =>
      `${fixed(median(samples.get(encrypted)!.map((sample, round) => measure(sample) / measure(samples.get(walship)![round]!) - 1)) * 100)}%`;
    lines.push(
      `- ${workload}: walship / pgBackRest = **${ratio(medians.get(walship)!, medians.get(peer)!)}**, walship / floor = **${ratio(medians.get(walship)!, medians.get(floor)!)}**, ` +
        `encryption adds **${added((sample) => sample.ms)}** of wall time (${added((sample) => sample.cpuMs)} of CPU time; medians of each round's ratio)`,
    );
  }
  return { title: 'wal-push: foreground time of one 16 MiB segment', lines, chart: { walPush: chart } };
}
