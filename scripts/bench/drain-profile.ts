/**
 * Where the drain's time goes (issue 14, aim 2): the drain benchmark's
 * backlog (archiving.ts: the archiver holds N `.ready` segments, then
 * archive_command is switched on) drained by walship and by pgBackRest
 * async, watched from outside:
 *   - each archive_command call's wall time (a `date` before and after it in
 *     the command) and its CPU (the archiver's cutime + cstime: it waits for
 *     every call, not for the helpers they leave);
 *   - every helper's CPU (walship's pusher, pgBackRest's async process and
 *     its local workers: utime + stime from /proc every 50 ms), the
 *     archiver's own, s3rver's, and this process's (the TLS proxy, and the
 *     sampling itself);
 *   - uploads in flight, sampled with the CPU: walship's claim files in its
 *     spool, pgBackRest's helpers' open descriptors on pg_wal segments;
 *   - the cores: /proc/stat from the switch until the backlog is empty
 *     (busy, iowait), and the share of samples in which both were busy.
 * With --perf, each drain also runs under `perf record -a -g` (its data and
 * the helpers' pids are kept in --out for perf report); with --strace, an
 * extra drain per contender traces the helpers (strace -f -c -w: wall time
 * per system call); with --cpu-prof BINARY, an extra walship drain runs a
 * build whose pkg.config.json has "execArgvExtension": "env" with
 * NODE_OPTIONS=--cpu-prof, and prints the pusher's self time by function.
 *
 *   node scripts/with-runtime.mjs scripts/bench/drain-profile.ts [--segments 80] [--rounds 1] [--perf] [--strace] [--cpu-prof BINARY] [--out DIR]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import { archivers, holdArchiver } from './archiving.ts';
import { type BenchContext, fixed, markdownTable, median, postgresDirectory, rotatedInGroups, standaloneContext, waitFor, writePostgresFile } from './common.ts';
import { backlogSize, createWalFixture, markReady, setArchiveCommand } from './fixture.ts';
import { fileTarget, s3Target, type Target } from './targets.ts';

const { values } = parseArgs({
  options: {
    segments: { type: 'string', default: '80' },
    rounds: { type: 'string', default: '1' },
    perf: { type: 'boolean', default: false },
    strace: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    out: { type: 'string', default: '/tmp/drain-profile' },
  },
});
const CLOCK_TICKS = 100;
const SAMPLE_MS = 50;
const PERF_HZ = 499;
const SEGMENT_FD = /\/pg_wal\/[0-9A-F]{24}$/;

const cpuOf = (stat: string[]) => (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS;
const childrenCpuOf = (stat: string[]) => (Number(stat[13]) + Number(stat[14])) / CLOCK_TICKS;

function statOf(pid: number | string): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function segmentFds(pid: string): number {
  let count = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (SEGMENT_FD.test(readlinkSync(`/proc/${pid}/fd/${fd}`))) count++;
      } catch {
        // closed while we looked
      }
    }
  } catch {
    // the process ended
  }
  return count;
}

/** busy and iowait jiffies of each CPU ("cpu0", ...) and of all ("cpu"). */
function cpuTimes(): Map<string, { busy: number; iowait: number; total: number }> {
  const times = new Map<string, { busy: number; iowait: number; total: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const [name = '', ...fields] = line.split(/\s+/);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields.map(Number);
    times.set(name, { busy: user + nice + system + irq + softirq + steal, iowait, total: user + nice + system + idle + iowait + irq + softirq + steal });
  }
  return times;
}

/** A helper process (walship's pusher, pgBackRest's async process or worker): the key sampleProcessPeaks uses. */
function helperKey(argv: string[]): string | undefined {
  const program = argv[0]?.split('/').at(-1) ?? '';
  if (program === 'pgbackrest') {
    const command = argv.find((arg) => /^archive-push/.test(arg)) ?? '';
    return command === 'archive-push' ? undefined : `pgbackrest ${command}`;
  }
  if (/^walship/.test(program)) return argv.includes('wal-push-ahead') ? 'walship wal-push-ahead' : argv.includes('wal-copy-ahead') ? 'walship wal-copy-ahead' : undefined;
  return undefined;
}

interface Watch {
  helperCpu: Map<string, number>;
  helperPids: Map<string, number[]>;
  /** Samples with a helper alive, until the backlog is drained: uploads in flight in each. */
  inFlight: number[];
  /** Share of those samples with both cores over 90% busy. */
  bothBusy: number;
}

/** Claims held under `spool` (walship's uploads in flight: the pusher's and a call's own). */
function claimsUnder(spool: string): number {
  try {
    return readdirSync(spool, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.claim')).length;
  } catch {
    return 0;
  }
}

/** Watches until `stop`; the cores only until `drained` (a pusher waits idle before it exits). */
function watchHelpers(marker: string, spool: string): { drained(): void; stop(): Promise<Watch> } {
  const seen = new Map<string, { key: string; cpu: number }>();
  const inFlight: number[] = [];
  let bothBusySamples = 0;
  let samples = 0;
  let running = true;
  let draining = true;
  let previous = cpuTimes();
  const loop = (async () => {
    while (running) {
      let flight = claimsUnder(spool);
      let alive = false;
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        let argv: string[];
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (!cmdline.includes(marker)) continue;
          argv = cmdline.split('\0').filter(Boolean);
        } catch {
          continue;
        }
        const key = helperKey(argv);
        const stat = key && statOf(pid);
        if (!key || !stat) continue;
        alive = true;
        seen.set(pid, { key, cpu: cpuOf(stat) });
        if (key.startsWith('pgbackrest')) flight += segmentFds(pid);
      }
      const now = cpuTimes();
      if (alive && draining) {
        inFlight.push(flight);
        samples++;
        const busy = [...now].filter(([name]) => name !== 'cpu').map(([name, time]) => {
          const before = previous.get(name)!;
          return (time.busy - before.busy) / Math.max(1, time.total - before.total);
        });
        if (busy.every((share) => share > 0.9)) bothBusySamples++;
      }
      previous = now;
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  const drained = () => void (draining = false);
  const stop = async () => {
    running = false;
    await loop;
    const helperCpu = new Map<string, number>();
    const helperPids = new Map<string, number[]>();
    for (const [pid, { key, cpu }] of seen) {
      helperCpu.set(key, (helperCpu.get(key) ?? 0) + cpu);
      helperPids.set(key, [...(helperPids.get(key) ?? []), Number(pid)]);
    }
    return { helperCpu, helperPids, inFlight, bothBusy: samples ? bothBusySamples / samples : 0 };
  };
  return { drained, stop };
}

function archiverPid(dataDir: string): number {
  const postmaster = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = statOf(pid);
    if (stat?.[1] === postmaster && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres: archiver')) return Number(pid);
  }
  throw new Error('no archiver process');
}

/** The command with its wall time appended to `log` as "start end status" in ns. */
const timed = (command: string, log: string) => `s=$(date +%s%N); ${command}; r=$?; echo "$s $(date +%s%N) $r" >> ${log}; exit $r`;

interface Run {
  contender: string;
  target: string;
  segments: number;
  wall: number;
  calls: number;
  callWall: number;
  callCpu: number;
  archiverCpu: number;
  helperCpu: Map<string, number>;
  serverCpu: number;
  selfCpu: number;
  inFlight: number[];
  bothBusy: number;
  busy: number;
  iowait: number;
  /** The helpers' pids by kind: the processes whose perf samples count. */
  helperPids: Map<string, number[]>;
}

async function drainOnce(context: BenchContext, fixture: Awaited<ReturnType<typeof createWalFixture>>, archiver: ReturnType<typeof archivers>[number], name: string, extra: { perf?: string; strace?: string } = {}): Promise<Run> {
  const { cluster, segments } = fixture;
  await holdArchiver(cluster, context.root);
  markReady(cluster, segments);
  if (backlogSize(cluster) !== segments.length) throw new Error(`backlog is ${backlogSize(cluster)}, expected ${segments.length}`);
  const { command } = await archiver.prepare(name);
  const callLog = writePostgresFile(join(context.root, `${name}.calls`), '');
  const archiver0 = archiverPid(cluster.dataDir);
  const archiverBefore = statOf(archiver0)!;
  const server = archiver.target.serverCpuSeconds;
  const serverBefore = server?.() ?? 0;
  let perf: ChildProcess | undefined;
  if (extra.perf) {
    perf = spawn('perf', ['record', '-a', '-g', '-F', String(PERF_HZ), '-o', extra.perf], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const straces: ChildProcess[] = [];
  const traced = new Set<string>();
  let tracing = Boolean(extra.strace);
  const traceLoop = (async () => {
    while (tracing) {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid) || traced.has(pid)) continue;
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
          if (!argv.some((arg) => arg.includes(context.root)) || !helperKey(argv)) continue;
        } catch {
          continue;
        }
        traced.add(pid);
        straces.push(spawn('strace', ['-f', '-c', '-w', '-o', `${extra.strace}.${pid}`, '-p', pid], { stdio: 'ignore' }));
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  const watching = watchHelpers(context.root, join(context.root, 'spools', name));
  const selfBefore = process.cpuUsage();
  const systemBefore = cpuTimes().get('cpu')!;
  const started = process.hrtime.bigint();
  await setArchiveCommand(cluster, timed(command, callLog));
  await waitFor(`${name} to drain`, () => backlogSize(cluster) === 0, 20 * 60_000, 25);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const systemAfter = cpuTimes().get('cpu')!;
  // Until the backlog is empty: a pusher then waits idle for a while, and the sampling of it would count here.
  const self = process.cpuUsage(selfBefore);
  watching.drained();
  await holdArchiver(cluster, context.root);
  tracing = false;
  await traceLoop;
  const watch = await watching.stop();
  if (perf) {
    perf.kill('SIGINT');
    await once(perf, 'exit');
  }
  for (const strace of straces) if (strace.exitCode === null) await once(strace, 'exit');
  const archiverAfter = statOf(archiver0)!;
  const calls = readFileSync(callLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => line.split(' ').map(Number));
  const total = systemAfter.total - systemBefore.total;
  return {
    contender: archiver.tool,
    target: archiver.target.name,
    segments: segments.length,
    wall,
    calls: calls.length,
    callWall: calls.reduce((sum, [start = 0, end = 0]) => sum + (end - start) / 1e9, 0),
    callCpu: childrenCpuOf(archiverAfter) - childrenCpuOf(archiverBefore),
    archiverCpu: cpuOf(archiverAfter) - cpuOf(archiverBefore),
    helperCpu: watch.helperCpu,
    serverCpu: (server?.() ?? 0) - serverBefore,
    selfCpu: (self.user + self.system) / 1e6,
    inFlight: watch.inFlight,
    bothBusy: watch.bothBusy,
    busy: (systemAfter.busy - systemBefore.busy) / total,
    iowait: (systemAfter.iowait - systemBefore.iowait) / total,
    helperPids: watch.helperPids,
  };
}

/** A perf sample's category, from its stack (leaf first): "symbol (dso)" per frame. */
function categoryOf(frames: { symbol: string; dso: string }[]): string {
  const any = (pattern: RegExp) => frames.some((frame) => pattern.test(frame.symbol));
  const [leaf = { symbol: '', dso: '' }] = frames;
  if (any(/^(ext4_sync_file|vfs_fsync_range|file_write_and_wait_range|__x64_sys_fsync|__x64_sys_fdatasync)$/)) return 'fsync (kernel)';
  if (leaf.dso.includes('kernel')) {
    if (any(/^(tcp_|inet_|sock_|__sys_sendto|__sys_recvfrom|__sys_sendmsg|__sys_recvmsg|unix_stream|__x64_sys_sendto|__x64_sys_recvfrom|net_rx_action|__napi_poll)/)) return 'network (kernel)';
    if (any(/^(ksys_write|vfs_write|ksys_pwrite64|__x64_sys_pwrite64|__x64_sys_write|do_iter_write|vfs_writev)$/)) return 'writes (kernel)';
    if (any(/^(ksys_read|vfs_read|ksys_pread64|__x64_sys_pread64|__x64_sys_read|filemap_read)$/)) return 'reads (kernel)';
    if (any(/^(exc_page_fault|asm_exc_page_fault)$/)) return 'page faults (kernel)';
    if (any(/^(__x64_sys_(mmap|munmap|madvise|brk|mprotect)|do_exit|__x64_sys_exit_group|do_group_exit)$/)) return 'mmap, munmap, exit (kernel)';
    if (any(/^(__x64_sys_(execve|clone|clone3|wait4|fork|vfork)|do_execveat_common|begin_new_exec|load_elf_binary)$/)) return 'exec, fork (kernel)';
    if (any(/^(__x64_sys_(openat|rename|renameat2|unlink|unlinkat|newfstatat|statx|fstat|getdents64|close|inotify_add_watch|mkdir|link|linkat))$/)) return 'open, stat, rename, close (kernel)';
    if (any(/^(__x64_sys_(epoll_wait|epoll_pwait|futex|poll|ppoll|select|pselect6|nanosleep|clock_nanosleep))$/) || any(/^schedule$/)) return 'waits, futex, epoll (kernel)';
    return 'other kernel';
  }
  if (/libzstd/.test(leaf.dso) || /^(ZSTD_|HUF_|FSE_|HIST_)/.test(leaf.symbol)) return 'zstd compression';
  if (/crc32/i.test(leaf.symbol)) return 'CRC-32';
  if (/libcrypto|libssl/.test(leaf.dso) || /aesni|gcm_|ghash|sha1_block|sha256_block|sha512_block|^EVP_|^ssl|^tls|^ossl_|chacha|poly1305/i.test(leaf.symbol)) return 'TLS, crypto, SHA (OpenSSL)';
  if (/^(__memmove|__memcpy|__memset|memcpy|memmove|memset)/.test(leaf.symbol)) return 'memcpy, memset (libc)';
  if (/^(_int_malloc|_int_free|malloc|free|cfree|__libc_malloc|__libc_free|malloc_consolidate|_int_realloc|realloc|unlink_chunk|__libc_calloc|calloc)/.test(leaf.symbol)) return 'malloc, free (libc)';
  if (any(/v8::internal::(Heap::|Scavenger|MarkCompact|ConcurrentMarking|Sweeper|MinorMarkSweep|MarkingVisitor|Evacuat|PointersUpdating|IncrementalMarking|GCTracer|MemoryAllocator)/)) return 'GC (V8)';
  if (/^_dl_|^do_lookup|^dl_/.test(leaf.symbol) || /ld-linux/.test(leaf.dso)) return 'dynamic loading (ld.so)';
  if (/walship|JIT|perf-|unknown/.test(leaf.dso) || /^(Builtins_|v8::|node::|uv_|Runtime_)/.test(leaf.symbol)) return 'JS, V8, Node runtime (the rest)';
  return `other user (${leaf.dso.split('/').at(-1)})`;
}

/** CPU ms by category of the samples of the processes `pids` (and their threads) in a `perf record -a -g` file. */
function perfCategories(file: string, pids: number[], hz: number): Map<string, number> {
  const wanted = new Set(pids.map(String));
  const script = execFileSync('perf', ['script', '-i', file, '-F', 'pid,tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const categories = new Map<string, number>();
  for (const sample of script.split('\n\n')) {
    const [header = '', ...lines] = sample.split('\n').filter((line) => line.trim());
    if (!wanted.has(header.trim().split('/')[0]!)) continue;
    const frames = lines.map((line) => {
      const match = /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(line);
      return { symbol: (match?.[1] ?? '').replace(/\+0x[0-9a-f]+$/, ''), dso: match?.[2] ?? '' };
    });
    const category = categoryOf(frames);
    categories.set(category, (categories.get(category) ?? 0) + 1000 / hz);
  }
  return categories;
}

/** Self time by function of a --cpu-prof profile, ms. */
function selfTimes(file: string): Map<string, number> {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const names = new Map(profile.nodes.map((node) => [node.id, `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').at(-1)}:${node.callFrame.lineNumber + 1}`]));
  const times = new Map<string, number>();
  profile.samples.forEach((id, index) => {
    const name = names.get(id)!;
    times.set(name, (times.get(name) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  return times;
}

function report(runs: Run[]): void {
  const rows = runs.map((run) => {
    const perSegment = (seconds: number) => fixed((1000 * seconds) / run.segments, 1);
    const helpers = [...run.helperCpu].map(([key, cpu]) => `${key.replace(/^walship |^pgbackrest /, '')} ${perSegment(cpu)}`).join('; ');
    const helperTotal = [...run.helperCpu.values()].reduce((sum, cpu) => sum + cpu, 0);
    return [
      run.target,
      run.contender,
      `${fixed(run.wall, 1)} (${fixed(run.segments / run.wall, 1)}/s)`,
      `${run.calls}, ${fixed(run.callWall, 2)} s`,
      perSegment(run.callCpu),
      helpers || '-',
      perSegment(run.archiverCpu),
      run.target === 'file' ? '-' : perSegment(run.serverCpu),
      perSegment(run.selfCpu),
      perSegment(run.callCpu + helperTotal),
      run.inFlight.length ? `${median(run.inFlight)} / ${Math.max(...run.inFlight)}` : '-',
      `${fixed(100 * run.busy, 0)}% / ${fixed(100 * run.iowait, 0)}% / ${fixed(100 * run.bothBusy, 0)}%`,
    ];
  });
  console.log(
    markdownTable(
      ['target', 'contender', 'wall s', 'calls, their wall', 'calls CPU ms/seg', 'helpers CPU ms/seg', 'archiver ms/seg', 's3rver ms/seg', 'bench process (TLS proxy, sampling) ms/seg', 'tool CPU ms/seg', 'uploads in flight median / max', 'cores busy / iowait / both busy'],
      rows,
    ).join('\n'),
  );
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  ensureDebianPackages('postgresql-15', 'pgbackrest', 'zstd', ...(values.perf ? (['linux-perf'] as const) : []), ...(values.strace ? (['strace'] as const) : []));
  const out = values.out!;
  mkdirSync(out, { recursive: true });
  const startLoad = loadAverage();
  const context = standaloneContext('walship-drain-profile-', Number(values.rounds));
  const { root } = context;
  const cleanups: (() => Promise<void>)[] = [];
  const fixture = await createWalFixture(context, Number(values.segments));
  try {
    const s3 = await s3Target(context, (cleanup) => void cleanups.push(cleanup));
    const targets: Target[] = [fileTarget(context), ...(typeof s3 === 'string' ? [] : [s3])];
    if (typeof s3 === 'string') context.log(`s3rver not measured: ${s3}`);
    const contenders = archivers(context, fixture, targets).filter((archiver) => archiver.tool === 'walship wal-push' || archiver.tool === 'pgbackrest archive-push async');
    const runs: Run[] = [];
    for (let round = 0; round < context.rounds; round++) {
      for (const archiver of rotatedInGroups(contenders, round, (archiver) => archiver.target.name)) {
        const name = `${archiver.target.name}-${archiver.tool.split(' ')[0]}-${round}`;
        const perf = values.perf ? join(out, `${name}.perf.data`) : undefined;
        const run = await drainOnce(context, fixture, archiver, name, { perf });
        runs.push(run);
        if (perf) {
          const pids = [...run.helperPids.values()].flat();
          const categories = [...perfCategories(perf, pids, PERF_HZ)].sort((a, b) => b[1] - a[1]);
          const total = categories.reduce((sum, [, ms]) => sum + ms, 0);
          console.log(`\n${name}: perf, the helpers (${[...run.helperPids.keys()].join(', ')}: pids ${pids.join(' ')}), ${fixed(total, 0)} ms of samples; ms per segment:\n`);
          console.log(markdownTable(['category', 'ms/segment', 'share'], categories.map(([category, ms]) => [category, fixed(ms / run.segments, 1), `${fixed((100 * ms) / total, 0)}%`])).join('\n'));
        }
        context.log(`${name}: ${run.segments} segments in ${fixed(run.wall, 1)} s, ${run.calls} calls`);
      }
    }
    if (values.strace) {
      for (const archiver of contenders) {
        const name = `${archiver.target.name}-${archiver.tool.split(' ')[0]}-strace`;
        const run = await drainOnce(context, fixture, archiver, name, { strace: join(out, `${name}.strace`) });
        context.log(`${name} (under strace): ${fixed(run.wall, 1)} s; summaries in ${out}/${name}.strace.*`);
      }
    }
    const profiled = values['cpu-prof'];
    if (profiled) {
      // Named walship, so holdArchiver waits for its pusher (and its profile) too.
      const binary = join(postgresDirectory(join(root, 'cpu-prof')), 'walship');
      copyFileSync(profiled, binary);
      chmodSync(binary, 0o755);
      for (const target of targets) {
        const profiles = postgresDirectory(join(root, `cpu-prof-${target.name}`));
        const [walship] = archivers({ ...context, walship: binary, variants: [] }, fixture, [target]);
        const variant = { ...walship!, prepare: async (name: string) => {
          const prepared = await walship!.prepare(name);
          return { ...prepared, command: `NODE_OPTIONS='--cpu-prof --cpu-prof-dir=${profiles}' ${prepared.command}` };
        } };
        const run = await drainOnce(context, fixture, variant, `${target.name}-cpu-prof`);
        context.log(`${target.name} under --cpu-prof: ${fixed(run.wall, 1)} s, ${run.calls} calls`);
        execFileSync('cp', ['-r', profiles, out]);
        const pushers = run.helperPids.get('walship wal-push-ahead') ?? [];
        for (const file of readdirSync(profiles).filter((file) => pushers.some((pid) => file.includes(`.${pid}.`)))) {
          const times = [...selfTimes(join(profiles, file))].sort((a, b) => b[1] - a[1]);
          const total = times.reduce((sum, [, ms]) => sum + ms, 0);
          console.log(`\n${target.name}: ${file}: ${fixed(total, 0)} ms profiled; self time, ms per segment:\n`);
          console.log(markdownTable(['function', 'ms', 'ms/segment'], times.slice(0, 25).map(([fn, ms]) => [fn, fixed(ms, 0), fixed(ms / fixture.segments.length, 1)])).join('\n'));
        }
      }
    }
    console.log(`\nDrain of ${fixture.segments.length} segments, ${context.rounds} round(s), load average ${startLoad} at the start, ${loadAverage()} at the end:\n`);
    report(runs);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await fixture.cluster.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
