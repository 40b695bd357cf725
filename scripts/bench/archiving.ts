/**
 * Archiving and recovery throughput inside a real PostgreSQL 15, walship vs
 * pgBackRest 2.45 (synchronous and async), on every available target:
 *   drain      the archiver's backlog of N `.ready` segments: time from
 *              switching archive_command (from `false`) until none is left;
 *   replay     recovery of the cold backup through the same N segments with
 *              restore_command, until the server is promoted;
 *   sustained  a heavy pgbench write load with archiving on: the backlog
 *              sampled over time;
 * and the peak RSS of every archive_command / restore_command process
 * (GNU time) and of detached helpers (VmHWM sampled from /proc).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Config } from '../../src/config/config.ts';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import { restoreCommandWithFastPath } from '../../src/wal/restore-command.ts';
import { PREFETCH_AREA, spoolNextTo } from '../../src/wal/spool.ts';
import { LOCAL_CLUSTER } from '../../test/support/postgres.ts';
import {
  type BenchContext,
  type BenchReport,
  fixed,
  markdownTable,
  median,
  postgresDirectory,
  type ProcessSamples,
  readCpuLog,
  readRssLog,
  rotatedInGroups,
  sampleProcessPeaks,
  waitFor,
  withRssLog,
  writePostgresFile,
} from './common.ts';
import type { BacklogSeries, RatePoint } from './chart.ts';
import { backlogSize, heavyWorkload, markReady, setArchiveCommand, type WalFixture } from './fixture.ts';
import { configurePgBackRest, createStanza } from './pgbackrest.ts';
import { type Target, withSettings } from './targets.ts';
import { LEVEL } from './wal-push.ts';

const SEGMENT_MIB = 16;

/** One way of archiving (walship, pgBackRest sync or async) on one target. */
interface Archiver {
  tool: string;
  target: Target;
  /** Creates an empty archive called `name`; returns the archive_command and how to restore from that archive. */
  prepare(name: string): Promise<{ command: string; restorers: Restorer[] }>;
}

/** One way of restoring (restore_command) from an archive a drain wrote. */
export interface Restorer {
  tool: string;
  /** The target's name. */
  target: string;
  /** The restore_command for a cluster in `dataDir`; `home` is a fresh directory for its files. */
  command(dataDir: string, home: string): string;
  /** A baseline, not a contender (no RSS; its ratio in brackets), with its short name for the chart. */
  baseline?: string;
  /** A walship --variant (its ratio to default walship in brackets). */
  variant?: boolean;
  /** Runs before the server starts (outside the timing). */
  prepare?(dataDir: string): void;
}

export interface ArchiverPeak {
  contender: string;
  /** Peak RSS of each archive_command/restore_command process, KiB. */
  perCall: number[];
  /** Peak RSS of long-lived helpers (pgBackRest's async process), KiB, by process name. */
  helpers: Map<string, number>;
}

export interface DrainResult {
  report: BenchReport;
  restorers: Restorer[];
  peaks: ArchiverPeak[];
}

const label = (tool: string, target: Target | string) => `${tool} (${typeof target === 'string' ? target : target.name})`;

const runsText = (rounds: number) => (rounds > 1 ? `median of ${rounds} runs per contender, interleaved in rotated order` : 'one run per contender');

const FOREGROUND = /^(archive-push|archive-get|wal-push|wal-fetch)$/;

/** Of the sampled processes, the tools' long-lived helpers (not the archive_command/restore_command calls GNU time measures). */
function helpersOf<T>(sampled: Map<string, T>): [string, T][] {
  return [...sampled].filter(([process]) => {
    const [program = '', command = ''] = process.split(' ');
    // A --baseline build runs as walship-baseline-N.
    return (program === 'pgbackrest' || /^walship(-baseline-\d+)?$/.test(program)) && !FOREGROUND.test(command);
  });
}

/** Adds per-call peaks and helper peaks to `contender`'s entry in `peaks`. */
function mergePeak(peaks: Map<string, ArchiverPeak>, contender: string, perCall: number[], helpers: Iterable<[string, number]>): void {
  const peak: ArchiverPeak = peaks.get(contender) ?? { contender, perCall: [], helpers: new Map() };
  peak.perCall.push(...perCall);
  for (const [process, kib] of helpers) peak.helpers.set(process, Math.max(peak.helpers.get(process) ?? 0, kib));
  peaks.set(contender, peak);
}

function recordPeaks(peaks: Map<string, ArchiverPeak>, key: string, calls: CallLog, sampled: ProcessSamples): void {
  mergePeak(peaks, key, calls.rss, helpersOf(sampled.peaks));
}

/** What GNU time logged for a run's archive_command/restore_command calls: each one's peak RSS (KiB), and their CPU seconds. */
interface CallLog {
  rss: number[];
  cpu: number;
}

const readCallLog = (rssLog: string): CallLog => ({ rss: readRssLog(rssLog), cpu: readCpuLog(rssLog) });

/** CPU seconds of a run: its archive_command/restore_command calls (GNU time) and the tools' helpers (sampled). */
function cpuOfRun(callLog: CallLog, sampled: ProcessSamples): { calls: number; helpers: number; total: number } {
  const calls = callLog.cpu;
  const helpers = helpersOf(sampled.cpuSeconds).reduce((sum, [, seconds]) => sum + seconds, 0);
  return { calls, helpers, total: calls + helpers };
}

const cpuText = (cpu: { calls: number; helpers: number }) => `CPU ${fixed(cpu.calls, 2)} s in calls, ${fixed(cpu.helpers, 2)} s in helpers`;

/** The median CPU time per segment, in ms. */
const cpuPerSegment = (cpuSeconds: number[], segments: number) => fixed((1000 * median(cpuSeconds)) / segments, 0);

/**
 * walship's restore_command from an archive with `storage` settings, as backup-fetch writes it: the shell
 * fast path over the prefetch area (the default one, in the spool next to the restored data directory),
 * then wal-fetch with a config file; with `fastPath` false, wal-fetch alone.
 */
export function walshipRestorer(walship: string, storage: Record<string, string>, fastPath = true): Restorer {
  return {
    tool: fastPath ? 'walship wal-fetch' : 'walship wal-fetch (no fast path)',
    target: 'file',
    command: (dataDir, home) => {
      const configFile = writePostgresFile(join(home, 'walship.json'), JSON.stringify(storage));
      const walFetch = [walship, '--config', configFile, 'wal-fetch'];
      if (!fastPath) return `${walFetch.join(' ')} %f %p`;
      return restoreCommandWithFastPath(walFetch, join(spoolNextTo(dataDir), PREFETCH_AREA), storageSpecFrom(new Config(storage)).identity);
    },
  };
}

export function archivers(context: BenchContext, fixture: WalFixture, targets: Target[]): Archiver[] {
  const { cluster } = fixture;
  const list: Archiver[] = [];
  for (const target of targets) {
    // walship as configured by default, then each variant (extra settings, e.g. WALG_UPLOAD_CONCURRENCY=2, or another build).
    for (const variant of [undefined, ...context.variants]) {
      const tag = variant ? ` [${variant.name}]` : '';
      const walship = variant?.walship ?? context.walship;
      list.push({
        tool: `walship wal-push${tag}`,
        target,
        prepare: async (name) => {
          // A spool (look-ahead records) per archive: records made for another archive must not count here.
          const spool = postgresDirectory(join(context.root, 'spools', name));
          const storage = { ...target.walshipSettings(name), WALG_COMPRESSION_LEVEL: String(LEVEL), ...variant?.settings };
          const settings = { ...storage, WALSHIP_SPOOL_DIR: spool };
          return {
            command: withSettings(settings, `${walship} wal-push %p`),
            restorers: [{ ...walshipRestorer(walship, storage), tool: `walship wal-fetch${tag}`, target: target.name, variant: Boolean(variant) }],
          };
        },
      });
    }
    const pgbackrestRepository = target.pgbackrestRepository;
    if (!pgbackrestRepository) continue;
    for (const async of [false, true]) {
      list.push({
        tool: `pgbackrest archive-push${async ? ' async' : ''}`,
        target,
        prepare: async (name) => {
          const repository = pgbackrestRepository(name);
          const pgbackrest = configurePgBackRest({
            home: join(context.root, 'pgbackrest', name),
            dataDir: cluster.dataDir,
            socketDir: cluster.root,
            port: cluster.port,
            compressLevel: LEVEL,
            async,
            repository,
          });
          await createStanza(pgbackrest, cluster);
          // Restores read this repository, synchronously or through pgBackRest's async queue.
          const restorers: Restorer[] = [false, true].map((asyncGet) => ({
            tool: `pgbackrest archive-get${asyncGet ? ' async' : ''}`,
            target: target.name,
            command: (dataDir, home) =>
              configurePgBackRest({ home, dataDir, compressLevel: LEVEL, async: asyncGet, repository }).command('archive-get %f "%p"'),
          }));
          return { command: pgbackrest.command('archive-push %p'), restorers: async ? [] : restorers };
        },
      });
    }
  }
  return list;
}

/** Waits until no walship or pgBackRest process started for `marker` (such as pgBackRest's detached async helper) is left. */
async function waitForHelpers(marker: string): Promise<void> {
  const alive = () => {
    const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    // A baseline build runs as walship-baseline-N.
    return out.split('\n').some((line) => line.includes(marker) && /\b(pgbackrest|walship(-baseline-\d+)?) /.test(line));
  };
  await waitFor(`helpers of ${marker} to exit`, () => !alive(), 60_000, 200);
}

async function archiverStats(cluster: PostgresCluster): Promise<{ archived: number; failed: number }> {
  const [archived = '0', failed = '0'] = (await cluster.sql('SELECT archived_count, failed_count FROM pg_stat_archiver')).split('|');
  return { archived: Number(archived), failed: Number(failed) };
}

/** Stops archiving (archive_command = false) and lets the last command and any helper finish. */
export async function holdArchiver(cluster: PostgresCluster, marker: string): Promise<void> {
  await setArchiveCommand(cluster, 'false');
  await sleep(300);
  await waitForHelpers(marker);
}

export async function benchDrain(context: BenchContext, fixture: WalFixture, targets: Target[], skipped: string[]): Promise<DrainResult> {
  const { cluster, segments } = fixture;
  const contenders = archivers(context, fixture, targets);
  const rounds = context.rounds;
  const rates = new Map<string, number[]>(contenders.map((archiver) => [label(archiver.tool, archiver.target), []]));
  const cpu = new Map<string, number[]>(contenders.map((archiver) => [label(archiver.tool, archiver.target), []]));
  const failures = new Map<string, number>();
  const peaks = new Map<string, ArchiverPeak>();
  const restorers: Restorer[] = [];

  for (let round = 0; round < rounds; round++) {
    for (const archiver of rotatedInGroups(contenders, round, (archiver) => archiver.target.name)) {
      const name = `drain-${archiver.target.name}-${archiver.tool.replaceAll(' ', '-')}-${round}`;
      const home = postgresDirectory(join(context.root, 'runs', name));
      await holdArchiver(cluster, context.root);
      markReady(cluster, segments);
      if (backlogSize(cluster) !== segments.length) throw new Error(`drain: backlog is ${backlogSize(cluster)}, expected ${segments.length}`);
      const { command, restorers: fromThisArchive } = await archiver.prepare(name);
      const rssLog = writePostgresFile(join(home, 'rss.log'), '');
      const before = await archiverStats(cluster);
      const stopSampling = sampleProcessPeaks(context.root);
      const started = process.hrtime.bigint();
      await setArchiveCommand(cluster, withRssLog(command, rssLog));
      await waitFor(`${name} to drain ${segments.length} segments`, () => backlogSize(cluster) === 0, 20 * 60_000, 25);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await holdArchiver(cluster, context.root);
      const helpers = await stopSampling();
      const after = await archiverStats(cluster);
      // Done must mean stored: check the archive itself. (pg_stat_archiver's count would not do: walship
      // marks the files its pusher made durable as done, so the archiver never runs a command for them.)
      const stored = archiver.target.storedNames(name);
      const missing = segments.filter((segment) => !stored.some((file) => file.startsWith(segment)));
      if (missing.length) throw new Error(`drain: ${name} marked ${missing.length} segments done that are not in the archive, e.g. ${missing[0]}`);
      const key = label(archiver.tool, archiver.target);
      rates.get(key)!.push(segments.length / seconds);
      const calls = readCallLog(rssLog);
      const used = cpuOfRun(calls, helpers);
      cpu.get(key)!.push(used.total);
      failures.set(key, (failures.get(key) ?? 0) + after.failed - before.failed);
      recordPeaks(peaks, key, calls, helpers);
      context.log(`drain: ${key}: ${segments.length} segments in ${seconds.toFixed(1)} s (${(segments.length / seconds).toFixed(1)} segments/s; ${cpuText(used)})`);
      if (round === rounds - 1) restorers.push(...fromThisArchive);
    }
  }

  const rows: string[][] = [];
  const chart: RatePoint[] = [];
  for (const target of targets) {
    const walship = median(rates.get(label('walship wal-push', target)) ?? []);
    for (const archiver of contenders.filter((candidate) => candidate.target === target)) {
      const key = label(archiver.tool, target);
      const rate = median(rates.get(key)!);
      chart.push({ label: key, segmentsPerSecond: rate });
      rows.push([
        target.name,
        archiver.tool,
        String(segments.length),
        fixed(segments.length / rate),
        fixed(rate),
        fixed(rate * SEGMENT_MIB, 0),
        cpuPerSegment(cpu.get(key)!, segments.length),
        archiver.tool === 'walship wal-push' ? '1.00x' : archiver.tool.startsWith('walship') ? `(${fixed(walship / rate, 2)}x)` : `${fixed(walship / rate, 2)}x`,
        String(failures.get(key) ?? 0),
      ]);
    }
  }
  const notes = [
    ...targets.filter((target) => target.pgbackrestNote).map((target) => `- ${target.name}: ${target.pgbackrestNote}`),
    ...skipped.map((reason) => `- not measured: ${reason}`),
  ];
  const report: BenchReport = {
    title: `Backlog drain: ${segments.length} .ready segments`,
    lines: [
      `A real PostgreSQL 15 whose archiver holds ${segments.length} \`.ready\` segments (written by pgbench while archive_command was \`false\`: ` +
        `${fixture.bulk.length} from a bulk load, ${fixture.oltp.length} from update-heavy OLTP). Time from switching archive_command (ALTER SYSTEM + reload) ` +
        `until no \`.ready\` file is left; ${runsText(rounds)}. CPU: user and system time of the tool's processes ` +
        '(every archive_command call, and helpers such as walship\'s pusher and pgBackRest\'s async process), PostgreSQL\'s and storage servers\' not included; ' +
        `less noisy than the time on a shared machine. zstd level ${LEVEL} everywhere; ` +
        'pgBackRest async: archive-async=y, process-max=2, spool on the same file system.',
      '',
      ...markdownTable(['target', 'archiver', 'segments', 'seconds', 'segments/s', 'MiB/s (uncompressed)', 'CPU ms/segment', 'walship speed / this', 'failed calls'], rows),
      '',
      'Aims (issue 5): at least 2x pgBackRest synchronous archive-push, and ahead of its async mode.',
      ...notes,
    ],
    chart: { drain: chart },
  };
  return { report, restorers, peaks: [...peaks.values()] };
}

/**
 * The replay's baselines: `cp` of uncompressed segments (a synchronous
 * restore_command that costs almost nothing), and redo alone (every segment
 * already in pg_wal, restore_command = false).
 */
export function replayBaselines(fixture: WalFixture): Restorer[] {
  const { segments } = fixture;
  const floorSource = join(fixture.cluster.dataDir, 'pg_wal');
  for (const segment of segments) if (!existsSync(join(floorSource, segment))) throw new Error(`replay: ${segment} is no longer in ${floorSource}`);
  return [
    { tool: 'cp of uncompressed segments', target: 'file', baseline: 'cp (uncompressed)', command: () => `cp ${floorSource}/%f %p` },
    {
      tool: 'redo alone (segments already in pg_wal)',
      target: 'file',
      baseline: 'redo alone',
      command: () => 'false',
      prepare: (dataDir) => execFileSync('cp', ['-a', ...segments.map((segment) => join(floorSource, segment)), join(dataDir, 'pg_wal')]),
    },
  ];
}

/** Watches a replay from just before the server starts until its recovery ended; `stop` returns what it saw. */
export type ReplayObserver<T> = (server: PostgresCluster) => { stop(): Promise<T> };

/**
 * One recovery of the fixture's cold backup with `restorer` through all its
 * segments, until the server is promoted: the seconds from pg_ctl start, and
 * what GNU time logged for the restore_command calls (unless `observe`
 * watches the run: then the calls run bare, as PostgreSQL runs them in
 * production, and log nothing).
 */
export async function replayOnce<T = undefined>(
  context: BenchContext,
  fixture: WalFixture,
  restorer: Restorer,
  name: string,
  observe?: ReplayObserver<T>,
): Promise<{ seconds: number; calls: CallLog; helpers: ProcessSamples; observed: T | undefined; serverLog: string }> {
  const lastSegment = fixture.segments.at(-1)!;
  const home = postgresDirectory(join(context.root, 'runs', name));
  const dataDir = join(home, 'data');
  postgresDirectory(dataDir);
  execFileSync('cp', ['-a', `${fixture.coldBackup}/.`, dataDir]);
  const rssLog = writePostgresFile(join(home, 'rss.log'), '');
  const command = restorer.command(dataDir, postgresDirectory(join(home, 'tool')));
  restorer.prepare?.(dataDir);
  const restored = await PostgresCluster.adopt(dataDir, home, {
    ...LOCAL_CLUSTER,
    settings: {
      restore_command: observe ? command : withRssLog(command, rssLog),
      archive_mode: 'off',
      archive_command: '',
      log_min_messages: 'log',
      hot_standby: 'on',
      // Enough to hold the data set, so redo is not bound by page reads.
      shared_buffers: '512MB',
    },
  });
  restored.writeFile('recovery.signal', '');
  const stopSampling = sampleProcessPeaks(home);
  let observer = observe?.(restored);
  const started = process.hrtime.bigint();
  try {
    await restored.start();
    await waitFor(`${name} to finish recovery`, () => /database system is ready to accept connections/.test(readFileSync(restored.logFile, 'utf8')), 20 * 60_000, 50);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const observed = await observer?.stop();
    observer = undefined;
    const helpers = await stopSampling();
    // The new timeline starts in the segment after the last one replayed: it must be past the whole backlog.
    const current = await restored.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    if (current.slice(8) < lastSegment.slice(8)) throw new Error(`replay: ${name} ended at ${current}, before ${lastSegment}: ${restored.tailLog()}`);
    return { seconds, calls: readCallLog(rssLog), helpers, observed, serverLog: readFileSync(restored.logFile, 'utf8') };
  } finally {
    await observer?.stop().catch(() => undefined);
    await stopSampling().catch(() => undefined);
    await restored.destroy();
  }
}

/** Recovery of the cold backup through the whole backlog, once per restorer and per baseline in each round. */
export async function benchReplay(context: BenchContext, fixture: WalFixture, restorers: Restorer[]): Promise<{ report: BenchReport; peaks: ArchiverPeak[] }> {
  const { segments } = fixture;
  const contenders = [...restorers, ...replayBaselines(fixture)];
  const rounds = context.rounds;
  const rates = new Map<Restorer, number[]>(contenders.map((restorer) => [restorer, []]));
  const cpu = new Map<Restorer, number[]>(contenders.map((restorer) => [restorer, []]));
  const peaks = new Map<string, ArchiverPeak>();

  for (let round = 0; round < rounds; round++) {
    for (const restorer of rotatedInGroups(contenders, round, (restorer) => restorer.target)) {
      const name = `replay-${restorer.target}-${restorer.tool.split(' ').slice(0, 3).join('-')}-${round}`;
      const { seconds, calls, helpers } = await replayOnce(context, fixture, restorer, name);
      rates.get(restorer)!.push(segments.length / seconds);
      const used = cpuOfRun(calls, helpers);
      cpu.get(restorer)!.push(used.total);
      if (!restorer.baseline) recordPeaks(peaks, label(restorer.tool, restorer.target), calls, helpers);
      context.log(`replay: ${label(restorer.tool, restorer.target)}: ${segments.length} segments in ${seconds.toFixed(1)} s (${(segments.length / seconds).toFixed(1)} segments/s; ${cpuText(used)})`);
    }
  }

  const rows: string[][] = [];
  const chart: RatePoint[] = [];
  const walshipOn = (target: string) =>
    median(contenders.filter((restorer) => restorer.target === target && restorer.tool === 'walship wal-fetch').flatMap((restorer) => rates.get(restorer)!));
  for (const restorer of contenders) {
    const rate = median(rates.get(restorer)!);
    const walship = walshipOn(restorer.target);
    chart.push({ label: restorer.baseline ?? label(restorer.tool, restorer.target), segmentsPerSecond: rate });
    rows.push([
      restorer.target,
      restorer.tool,
      fixed(segments.length / rate),
      fixed(rate),
      restorer.tool.startsWith('redo alone') ? '' : cpuPerSegment(cpu.get(restorer)!, segments.length),
      restorer.tool === 'walship wal-fetch' ? '1.00x' : restorer.baseline || restorer.variant ? `(${fixed(walship / rate, 2)}x)` : `${fixed(walship / rate, 2)}x`,
    ]);
  }
  return {
    report: {
      title: `Recovery replay: the same ${segments.length} segments`,
      lines: [
        `The cold backup (taken before the backlog was written) recovers with recovery.signal and restore_command through all ${segments.length} archived segments, ` +
          `from the archives the drain benchmark wrote; time from pg_ctl start until the server is promoted; ${runsText(rounds)}. ` +
          'pgBackRest async: archive-async=y, process-max=2, default archive-get-queue-max (128 MiB). ' +
          'Baselines: `cp` of uncompressed segments (a synchronous restore_command that costs almost nothing), and redo alone ' +
          '(all segments already in pg_wal, restore_command = false): the ceiling any restore_command can reach on this machine. ' +
          "CPU: user and system time of every restore_command call and of the tools' helpers (walship's prefetcher, pgBackRest's async process), PostgreSQL's redo not included.",
        '',
        ...markdownTable(['target', 'restore_command', 'seconds', 'segments/s', 'CPU ms/segment', 'walship speed / this'], rows),
        '',
        'Aim (issue 5): at least 2x pgBackRest archive-get.',
      ],
      chart: { replay: chart },
    },
    peaks: [...peaks.values()],
  };
}

/** A heavy pgbench write load for a fixed time with each archiver: is the backlog kept near zero? */
export async function benchSustained(context: BenchContext, fixture: WalFixture, targets: Target[]): Promise<{ report: BenchReport; peaks: ArchiverPeak[] }> {
  const { cluster } = fixture;
  const seconds = context.quick ? 20 : 45;
  const contenders = archivers(context, fixture, targets);
  const runs = new Map<string, SustainedRun[]>(contenders.map((archiver) => [label(archiver.tool, archiver.target), []]));
  const series: BacklogSeries[] = [];
  const peaks: ArchiverPeak[] = [];
  // Checkpoints as often as a busy production server: segments full of full-page images.
  await cluster.sql("ALTER SYSTEM SET checkpoint_timeout = '30s'");
  await cluster.sql('SELECT pg_reload_conf()');
  const workload = heavyWorkload(cluster, 4);

  for (let round = 0; round < context.rounds; round++) {
    for (const archiver of rotatedInGroups(contenders, round, (archiver) => archiver.target.name)) {
      const key = label(archiver.tool, archiver.target);
      const name = `sustained-${archiver.target.name}-${archiver.tool.replaceAll(' ', '-')}-${round}`;
      const home = postgresDirectory(join(context.root, 'runs', name));
      await holdArchiver(cluster, context.root);
      await cluster.sql('TRUNCATE pgbench_history'); // the same table sizes for every archiver
      const { command } = await archiver.prepare(name);
      const rssLog = writePostgresFile(join(home, 'rss.log'), '');
      await setArchiveCommand(cluster, withRssLog(command, rssLog));
      await waitFor(`the backlog to be empty before ${name}`, () => backlogSize(cluster) === 0, 10 * 60_000, 100);
      const lsnBefore = await cluster.sql('SELECT pg_current_wal_lsn()');
      const stopSampling = sampleProcessPeaks(context.root);
      const points: [number, number][] = [];
      const started = Date.now();
      let loadDone = false;
      const load = cluster.client('pgbench', [...workload, '-T', String(seconds), 'postgres']).finally(() => (loadDone = true));
      while (!loadDone) {
        points.push([(Date.now() - started) / 1000, backlogSize(cluster)]);
        await sleep(500);
      }
      const output = await load;
      const loadSeconds = (Date.now() - started) / 1000;
      const walBytes = Number(await cluster.sql(`SELECT pg_current_wal_lsn() - '${lsnBefore}'::pg_lsn`));
      const backlogAtEnd = backlogSize(cluster);
      // Then how long the archiver needs to catch up.
      const catchUpStart = Date.now();
      for (let at = 0; backlogSize(cluster) > 0 && at < 20 * 60 * 10; at++) {
        if (at % 5 === 0) points.push([(Date.now() - started) / 1000, backlogSize(cluster)]);
        await sleep(100);
      }
      points.push([(Date.now() - started) / 1000, backlogSize(cluster)]);
      const catchUp = (Date.now() - catchUpStart) / 1000;
      await holdArchiver(cluster, context.root);
      const sampled = await stopSampling();
      const tps = Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? NaN);
      const during = points.filter(([t]) => t <= loadSeconds).map(([, n]) => n);
      const segments = walBytes / 2 ** 20 / SEGMENT_MIB;
      const calls = readCallLog(rssLog);
      const cpu = cpuOfRun(calls, sampled);
      runs.get(key)!.push({ tps, segmentsPerSecond: segments / loadSeconds, cpuMsPerSegment: (1000 * cpu.total) / segments, medianBacklog: median(during), maxBacklog: Math.max(...during), backlogAtEnd, catchUp });
      if (round === context.rounds - 1) series.push({ label: key, points });
      peaks.push({ contender: key, perCall: calls.rss, helpers: new Map(helpersOf(sampled.peaks)) });
      context.log(`sustained: ${key}: ${fixed(tps, 0)} tps, ${fixed(segments / loadSeconds, 2)} segments/s of WAL, ${fixed((1000 * cpu.total) / segments, 0)} ms CPU/segment (${cpuText(cpu)}), backlog max ${Math.max(...during)}, ${backlogAtEnd} at the end`);
    }
  }

  const rows: string[][] = [];
  for (const target of targets) {
    // Ratios against pgBackRest's synchronous archive-push, the cheapest in CPU (issue 14's aims).
    const reference = runs.get(`pgbackrest archive-push (${target.name})`);
    for (const archiver of contenders.filter((contender) => contender.target === target)) {
      const measured = runs.get(label(archiver.tool, archiver.target))!;
      const of = (field: keyof SustainedRun) => median(measured.map((run) => run[field]));
      const ratio = (field: keyof SustainedRun) => (reference ? `${fixed(of(field) / median(reference.map((run) => run[field])), 2)}x` : '-');
      rows.push([
        target.name,
        archiver.tool,
        fixed(of('tps'), 0),
        ratio('tps'),
        fixed(of('segmentsPerSecond'), 2),
        fixed(of('cpuMsPerSegment'), 0),
        ratio('cpuMsPerSegment'),
        fixed(of('medianBacklog'), 0),
        String(Math.max(...measured.map((run) => run.maxBacklog))),
        String(Math.max(...measured.map((run) => run.backlogAtEnd))),
        fixed(of('catchUp')),
      ]);
    }
  }
  return {
    report: {
      title: 'Sustained archiving under a heavy pgbench write load',
      lines: [
        `pgbench (4 clients; half UPDATEs of 100-row ranges of pgbench_accounts, half 1000-row INSERTs into pgbench_history; synchronous_commit off, ` +
          `checkpoint_timeout 30s) for ${seconds} s per archiver, ${runsText(context.rounds)}, ` +
          'with that archiver as archive_command; the `.ready` backlog sampled every 0.5 s. PostgreSQL, pgbench and the archiver share the 2 cores, ' +
          'so a cheaper archiver also leaves more CPU to the database (compare tps). ' +
          'CPU: user and system time of every archive_command call (GNU time) and of the tools\' helpers (sampled from /proc), per 16 MiB of WAL written; ' +
          'ratios against pgBackRest\'s synchronous archive-push on the same target. Backlog columns: the worst run.',
        '',
        ...markdownTable(
          ['target', 'archiver', 'pgbench tps', 'tps / pgBackRest sync', 'WAL written, segments/s', 'CPU ms/segment', 'CPU / pgBackRest sync', 'median backlog', 'max backlog', 'backlog at end', 'catch-up s'],
          rows,
        ),
      ],
      chart: { sustained: series },
    },
    peaks,
  };
}

/** One archiver's run of the sustained load. */
interface SustainedRun {
  tps: number;
  segmentsPerSecond: number;
  cpuMsPerSegment: number;
  medianBacklog: number;
  maxBacklog: number;
  backlogAtEnd: number;
  catchUp: number;
}

/** The peak-RSS table, from every archiving and restoring process the other benchmarks ran. */
export function peakReport(peaks: ArchiverPeak[]): BenchReport {
  const merged = new Map<string, ArchiverPeak>();
  for (const peak of peaks) mergePeak(merged, peak.contender, peak.perCall, peak.helpers);
  const mib = (kib: number) => fixed(kib / 1024, 0);
  const rows = [...merged.values()].map((peak) => [
    peak.contender,
    String(peak.perCall.length),
    mib(median(peak.perCall)),
    mib(Math.max(0, ...peak.perCall)),
    peak.helpers.size ? [...peak.helpers].map(([process, kib]) => `${process}: ${mib(kib)}`).join('; ') : '-',
  ]);
  return {
    title: 'Peak RSS of the archiving processes',
    lines: [
      'Peak resident memory of every archive_command / restore_command process run by the drain, replay and sustained benchmarks ' +
        '(GNU time, per call), and of long-lived helpers those commands leave running (VmHWM sampled from /proc every 0.2 s).',
      '',
      ...markdownTable(['contender', 'calls', 'median MiB', 'max MiB', 'helpers, peak MiB'], rows),
      '',
      'Aim (issue 5): wal-push resident memory under 100 MB.',
    ],
  };
}
