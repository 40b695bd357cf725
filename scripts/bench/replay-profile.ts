/**
 * Where the time goes between segments in recovery replay: PostgreSQL 15's
 * startup process, replaying the bench's WAL (fixture.ts: bulk load, then
 * OLTP with full-page images) from a cold backup, watched from outside for
 * each restore_command:
 *   cp         `cp` of the uncompressed segments;
 *   walship    as backup-fetch writes it: the shell fast path, then wal-fetch;
 *   wal-fetch  walship wal-fetch alone (a Node start per segment);
 *   redo alone every segment already in pg_wal (restore_command = false).
 * Each run samples the startup process's /proc files every 10 ms (its CPU
 * time, its wait for a CPU from schedstat, its children's CPU, its reads),
 * and takes PostgreSQL's own "redo done" line (redo wall time and CPU). With
 * --strace, extra runs trace the startup process alone (strace -T, no -f,
 * so restore_command's children run untraced) and sum its time per segment
 * by what it was doing: running restore_command (system(): fork, exec, the
 * command, wait), fsync of the restored file and of pg_wal, reading WAL,
 * the rest of its system calls, and user space (redo, plus strace's stops).
 * The restore_command calls run bare, as in production (no GNU time).
 *
 *   node scripts/with-runtime.mjs scripts/bench/replay-profile.ts [--segments 40] [--rounds 2] [--strace]
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresCluster } from '../../src/postgres/cluster.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import { type ReplayObserver, type Restorer, replayBaselines, replayOnce, walshipRestorer } from './archiving.ts';
import { fixed, markdownTable, median, postgresDirectory, postgresIdentity, rotated, serverEnvironment, standaloneContext } from './common.ts';
import { createWalFixture } from './fixture.ts';
import { LEVEL } from './wal-push.ts';

const { values } = parseArgs({ options: { segments: { type: 'string', default: '40' }, rounds: { type: 'string', default: '2' }, strace: { type: 'boolean', default: false } } });
const CLOCK_TICKS = 100;

/** The startup process's counters, read from /proc. */
interface StartupCounters {
  /** utime + stime, and the children's (restore_command, once waited for), seconds. */
  cpu: number;
  childrenCpu: number;
  /** Time on a CPU and waiting for one, from schedstat, seconds. */
  onCpu: number;
  runQueue: number;
  /** Bytes asked of read() and pread() (page cache included), and read from the disk, by it and its children (restore_command). */
  readChars: number;
  readBytes: number;
}

function readCounters(pid: number): StartupCounters | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const stat = text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number);
    const [onCpu = 0, runQueue = 0] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    const io = Object.fromEntries(readFileSync(`/proc/${pid}/io`, 'utf8').trim().split('\n').map((line) => line.split(': ')).map(([key, value]) => [key, Number(value)]));
    return {
      cpu: (stat[11]! + stat[12]!) / CLOCK_TICKS,
      childrenCpu: (stat[13]! + stat[14]!) / CLOCK_TICKS,
      onCpu: onCpu / 1e9,
      runQueue: runQueue / 1e9,
      readChars: io.rchar ?? 0,
      readBytes: io.read_bytes ?? 0,
    };
  } catch {
    return undefined; // it exited
  }
}

/** The server's startup process ("postgres: startup ..."), a child of the postmaster named in postmaster.pid. */
function findStartupProcess(dataDir: string): number | undefined {
  let postmaster: string;
  try {
    postmaster = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!;
  } catch {
    return undefined;
  }
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] !== postmaster) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres: startup')) return Number(pid);
    } catch {
      // gone while we looked
    }
  }
  return undefined;
}

interface Observed {
  counters: StartupCounters | undefined;
  traceFile: string | undefined;
}

/** Finds the startup process as soon as it runs, samples its counters until it exits, and traces it with `strace -T` when `traceFile` is given. */
function watchStartup(traceFile: string | undefined): ReplayObserver<Observed> {
  return (server: PostgresCluster) => {
    let running = true;
    let last: StartupCounters | undefined;
    let tracer: ReturnType<typeof spawn> | undefined;
    const loop = (async () => {
      let pid: number | undefined;
      while (running && pid === undefined) {
        pid = findStartupProcess(server.dataDir);
        if (pid === undefined) await sleep(2);
      }
      if (pid === undefined) return;
      if (traceFile) tracer = spawn('strace', ['-T', '-tt', '-y', '-o', traceFile, '-p', String(pid)], { stdio: 'ignore' });
      for (let counters = readCounters(pid); counters; counters = readCounters(pid)) {
        last = counters;
        await sleep(10);
      }
    })();
    return {
      async stop() {
        running = false;
        await loop;
        if (tracer && tracer.exitCode === null) {
          const exited = new Promise((resolve) => tracer!.once('exit', resolve));
          tracer.kill('SIGINT');
          await exited;
        }
        return { counters: last, traceFile };
      },
    };
  };
}

/** "redo done at ... system usage: CPU: user: 1.23 s, system: 0.45 s, elapsed: 6.78 s": the startup process's own account of redo. */
function redoUsage(serverLog: string): { cpu: number; elapsed: number } | undefined {
  const match = /redo done at .* CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s/.exec(serverLog);
  return match ? { cpu: Number(match[1]) + Number(match[2]), elapsed: Number(match[3]) } : undefined;
}

const TRACE_LINE = /^(\d\d):(\d\d):(\d\d\.\d+) (\w+)\((.*)\) += (.*) <([\d.]+)>$/;
const SEGMENT_OPEN = /"pg_wal\/[0-9A-F]{24}", O_RDONLY/;

/** What the startup process spent its time on between two segments, seconds per segment, from its strace -T -tt -y trace. */
function traceBreakdown(traceFile: string): { segments: number; perSegment: Map<string, number> } {
  const spent = new Map<string, number>();
  const add = (what: string, seconds: number) => spent.set(what, (spent.get(what) ?? 0) + seconds);
  let first: number | undefined;
  let lastOpen: number | undefined;
  let opens = 0;
  let commandStarted: number | undefined;
  /** Totals as they stood at the last segment opened: the tail after it (the end of recovery) is left out. */
  let atLastOpen = new Map<string, number>();
  for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
    const match = TRACE_LINE.exec(line);
    if (!match) continue;
    const [, hours, minutes, seconds, name, args, , duration] = match;
    const start = Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds);
    const took = Number(duration);
    if (name === 'openat' && SEGMENT_OPEN.test(args!)) {
      if (first === undefined) first = start;
      else opens++;
      lastOpen = start;
      atLastOpen = new Map(spent);
    }
    if (first === undefined) continue;
    // system(): posix_spawn's clone, then wait4 for the shell; what lies between is the command's.
    if (/^(clone|clone3|vfork)$/.test(name!)) {
      commandStarted = start;
      continue;
    }
    if (name === 'wait4' && commandStarted !== undefined) {
      add('restore_command (fork, exec, the command, wait)', start + took - commandStarted);
      commandStarted = undefined;
      continue;
    }
    if (commandStarted !== undefined) continue;
    add(categoryOf(name!, args!), took);
  }
  const wall = lastOpen !== undefined && first !== undefined ? lastOpen - first : 0;
  const perSegment = new Map<string, number>();
  const syscalls = [...atLastOpen.values()].reduce((sum, value) => sum + value, 0);
  for (const [what, total] of atLastOpen) perSegment.set(what, total / opens);
  perSegment.set('user space (redo; strace stops)', (wall - syscalls) / opens);
  perSegment.set('wall', wall / opens);
  return { segments: opens, perSegment };
}

function categoryOf(name: string, args: string): string {
  if (name === 'fsync' || name === 'fdatasync') {
    if (/\/pg_wal>/.test(args)) return 'fsync of pg_wal (directory)';
    if (/\/pg_wal\/[^/>]+>/.test(args)) return 'fsync of the restored file';
    return 'fsync, other';
  }
  if (/^(pread64|read)$/.test(name) && /\/pg_wal\/[0-9A-F]{24}>/.test(args)) return 'WAL reads';
  if (/^(pread64|read)$/.test(name) && /\/base\//.test(args)) return 'data file reads';
  // Redo extends relations a zeroed block at a time (smgrextend).
  if (/^(pwrite64|write)$/.test(name) && /\/base\//.test(args)) return 'data file writes (relation extension)';
  if (/^(openat|close|newfstatat|stat|lstat|unlink|rename|renameat2|lseek)$/.test(name)) return 'open, stat, rename, unlink, close';
  if (name === 'fadvise64') return 'fadvise (recovery_prefetch)';
  return 'other system calls';
}

interface Run {
  wall: number;
  redoCpu: number;
  runQueue: number;
  childrenCpu: number;
  readMiB: number;
  diskMiB: number;
  helperCpu: number;
}

async function main(): Promise<void> {
  ensureDebianPackages('postgresql-15', 'zstd', ...(values.strace ? (['strace'] as const) : []));
  const segmentsWanted = Number(values.segments);
  const rounds = Number(values.rounds);
  const context = standaloneContext('walship-replay-profile-', rounds);
  const { root } = context;
  const fixture = await createWalFixture(context, segmentsWanted);
  try {
    const { segments } = fixture;
    const storage = { WALG_FILE_PREFIX: postgresDirectory(join(root, 'archive')), WALG_COMPRESSION_LEVEL: String(LEVEL) };
    context.log(`pushing ${segments.length} segments into a walship file archive`);
    const identity = postgresIdentity();
    for (const segment of segments) {
      execFileSync(context.walship, ['wal-push', `pg_wal/${segment}`], {
        cwd: fixture.cluster.dataDir,
        env: serverEnvironment({ ...storage, TOTAL_BG_UPLOADED_LIMIT: '0', WALSHIP_SPOOL_DIR: postgresDirectory(join(root, 'push-spool')) }),
        ...identity,
      });
    }
    const [cp, redoAlone] = replayBaselines(fixture);
    const restorers: [string, Restorer][] = [
      ['cp', cp!],
      ['walship (fast path, then wal-fetch)', walshipRestorer(context.walship, storage)],
      ['walship wal-fetch alone', walshipRestorer(context.walship, storage, false)],
      ['redo alone', redoAlone!],
    ];
    const runs = new Map<string, Run[]>(restorers.map(([label]) => [label, []]));
    const traces = new Map<string, Map<string, number>[]>(restorers.map(([label]) => [label, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [label, restorer] of rotated(restorers, round)) {
        const name = `${label.split(' ')[0]}-${round}`;
        const { seconds, helpers, observed, serverLog } = await replayOnce(context, fixture, restorer, name, watchStartup(undefined));
        const redo = redoUsage(serverLog);
        const counters = observed?.counters;
        if (!redo || !counters) throw new Error(`${name}: no redo usage line or no startup process seen`);
        const helperCpu = [...helpers.cpuSeconds].filter(([process]) => process.startsWith('walship wal-prefetch')).reduce((sum, [, cpu]) => sum + cpu, 0);
        const run: Run = {
          wall: redo.elapsed,
          redoCpu: redo.cpu,
          runQueue: counters.runQueue,
          childrenCpu: counters.childrenCpu,
          readMiB: counters.readChars / 2 ** 20,
          diskMiB: counters.readBytes / 2 ** 20,
          helperCpu,
        };
        runs.get(label)!.push(run);
        context.log(`${label}: redo ${fixed(redo.elapsed, 2)} s for ${segments.length} segments (${fixed(segments.length / redo.elapsed, 1)} segments/s), pg_ctl start to ready ${fixed(seconds, 1)} s`);
        if (values.strace) {
          const traceFile = join(root, `${name}.strace`);
          await replayOnce(context, fixture, restorer, `${name}-traced`, watchStartup(traceFile));
          const { segments: traced, perSegment } = traceBreakdown(traceFile);
          traces.get(label)!.push(perSegment);
          context.log(`${label}: traced ${traced} segments`);
        }
      }
    }

    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const perSegment = (label: string, value: (run: Run) => number) => fixed((1000 * median(runs.get(label)!.map(value))) / segments.length, 0);
    console.log(`Replay of ${segments.length} segments, ${rounds} rounds (medians), load average ${load} at the end; ms per segment:\n`);
    console.log(
      markdownTable(
        ['restore_command', 'redo wall', 'startup CPU (redo)', 'startup waiting for a CPU', "restore_command's CPU", 'prefetcher CPU', 'read, restore_command included (MiB/segment)', 'of which from disk'],
        restorers.map(([label]) => [
          label,
          perSegment(label, (run) => run.wall),
          perSegment(label, (run) => run.redoCpu),
          perSegment(label, (run) => run.runQueue),
          perSegment(label, (run) => run.childrenCpu),
          perSegment(label, (run) => run.helperCpu),
          fixed(median(runs.get(label)!.map((run) => run.readMiB)) / segments.length, 1),
          fixed(median(runs.get(label)!.map((run) => run.diskMiB)) / segments.length, 1),
        ]),
      ).join('\n'),
    );
    if (values.strace) {
      const categories = [...new Set([...traces.values()].flatMap((list) => list.flatMap((map) => [...map.keys()])))];
      console.log("\nThe startup process's time per segment under strace -T (not its children), ms; medians of the traced runs:\n");
      console.log(
        markdownTable(
          ['', ...restorers.map(([label]) => label)],
          categories.map((category) => [category, ...restorers.map(([label]) => fixed(1000 * median(traces.get(label)!.map((map) => map.get(category) ?? 0)), 1))]),
        ).join('\n'),
      );
    }
  } finally {
    await fixture.cluster.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
