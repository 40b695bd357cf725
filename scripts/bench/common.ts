/**
 * What every benchmark shares: the context run.ts hands them, timing whole
 * processes the way PostgreSQL runs archive_command (`/bin/sh -c`, as the
 * postgres OS user, in the data directory), peak RSS, statistics and
 * markdown tables.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { walshipBinary } from '../../test/support/paths.ts';
import { makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { giveToPostgres, isRoot, POSTGRES_USER } from '../../test/support/processes.ts';

export interface BenchContext {
  /** Fewer repetitions and a smaller backlog, for a quick look (--quick). */
  quick: boolean;
  /** Runs per contender of the long benchmarks (drain, replay, copy): 1 unless --rounds N. */
  rounds: number;
  /**
   * Extra walship contenders, each a name with settings (--variant NAME:SETTING=VALUE,...)
   * or another build of walship (--baseline REV), measured next to the default everywhere.
   */
  variants: { name: string; settings: Record<string, string>; walship?: string }[];
  /** The walship binary under test: a private copy of dist/walship, readable by postgres. */
  walship: string;
  /** A postgres-owned scratch directory for this run, removed at the end. */
  root: string;
  log(message: string): void;
}

/**
 * The context of a profiling script run outside run.ts: a fresh postgres-owned
 * scratch directory named `prefix...`, a private copy of dist/walship in it,
 * and a log with the seconds since the start.
 */
export function standaloneContext(prefix: string, rounds: number): BenchContext {
  const root = makePostgresOwnedDirectory(prefix);
  const started = Date.now();
  const walship = join(root, 'walship');
  copyFileSync(walshipBinary, walship);
  chmodSync(walship, 0o755);
  return {
    quick: true,
    rounds,
    variants: [],
    walship,
    root,
    log: (message) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`),
  };
}

/** A markdown section of the results: a title, notes and tables, as plain lines. */
export interface BenchReport {
  title: string;
  lines: string[];
  /** Numbers the chart is drawn from (see chart.ts). */
  chart?: Record<string, unknown>;
}

const postgresHome = '/var/lib/postgresql';
let postgresIds: { uid: number; gid: number } | undefined;

/** The uid/gid to spawn processes as the postgres OS user (undefined when not root: run as ourselves). */
export function postgresIdentity(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  postgresIds ??= {
    uid: Number(execFileSync('id', ['-u', POSTGRES_USER])),
    gid: Number(execFileSync('id', ['-g', POSTGRES_USER])),
  };
  return postgresIds;
}

/** A fresh directory at `path` (emptied if it exists), owned by postgres. */
export function postgresDirectory(path: string): string {
  rmSync(path, { recursive: true, force: true });
  const first = mkdirSync(path, { recursive: true, mode: 0o750 }) ?? path;
  // Every level mkdir created, so postgres can reach the last one.
  for (let level = path; ; level = dirname(level)) {
    giveToPostgres(level);
    if (level === first || level === dirname(level)) break;
  }
  return path;
}

/** A file written by us and handed to postgres. */
export function writePostgresFile(path: string, content: string): string {
  writeFileSync(path, content);
  giveToPostgres(path);
  return path;
}

/** The environment PostgreSQL gives archive_command/restore_command, plus `extra`. */
export function serverEnvironment(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: isRoot ? postgresHome : (process.env.HOME ?? '/tmp'),
    LANG: 'C.UTF-8',
    ...extra,
  };
}

export interface Measured {
  ms: number;
  code: number;
  /** Peak resident set size of the process tree's largest waited-for process, KiB (GNU time %M). */
  maxRssKiB: number;
  /**
   * CPU time (user and system) of the process tree's waited-for processes, ms
   * (GNU time %U + %S, in hundredths of a second): on a machine other jobs
   * share, it moves far less than wall time.
   */
  cpuMs: number;
  stderr: string;
}

/**
 * Runs `command` with `/bin/sh -c` as postgres, timing the whole process from
 * spawn to exit. GNU time records the peak RSS and the CPU time; its own fork/exec (about a
 * millisecond) is paid equally by every command measured this way.
 */
export async function timeShell(command: string, options: { cwd: string; env: Record<string, string>; scratch: string }): Promise<Measured> {
  const rssFile = join(options.scratch, `.rss-${process.pid}`);
  rmSync(rssFile, { force: true });
  const identity = postgresIdentity();
  const started = process.hrtime.bigint();
  const { code, ended, stderr } = await new Promise<{ code: number; ended: bigint; stderr: string }>((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', rssFile, '/bin/sh', '-c', command], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...identity,
    });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk));
    child.on('error', reject);
    let ended = started;
    child.on('exit', () => (ended = process.hrtime.bigint()));
    child.on('close', (exitCode, signal) => resolve({ code: exitCode ?? (signal ? 128 : 1), ended, stderr: err }));
  });
  const rssText = existsSync(rssFile) ? readFileSync(rssFile, 'utf8') : '';
  const [rss, user, system] = (rssText.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
  return { ms: Number(ended - started) / 1e6, code, maxRssKiB: rss || 0, cpuMs: ((user || 0) + (system || 0)) * 1000, stderr };
}

/** Wraps an archive_command/restore_command so each call appends its peak RSS (KiB) and CPU seconds (user, system) to `logFile`. */
export function withRssLog(command: string, logFile: string): string {
  // A restore_command with walship's shell fast path: the process it starts on a miss (a hit starts none).
  const exec = command.lastIndexOf('; exec ');
  if (exec >= 0) return command.slice(0, exec + '; exec '.length) + withRssLog(command.slice(exec + '; exec '.length), logFile);
  // After any leading NAME=value assignments, which the shell then exports to time and the command.
  return command.replace(/^((?:[A-Za-z_][A-Za-z0-9_]*=\S* )*)/, `$1/usr/bin/time -a -f %M,%U,%S -o ${logFile} `);
}

function readLogLines(logFile: string): number[][] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .map((line) => line.trim().split(',').map(Number))
    .filter((fields) => fields.length === 3 && fields.every(Number.isFinite) && fields[0]! > 0);
}

/** The peak RSS of each call withRssLog logged, KiB. */
export function readRssLog(logFile: string): number[] {
  return readLogLines(logFile).map(([kib]) => kib!);
}

/** The CPU time (user + system) of all the calls withRssLog logged, seconds. */
export function readCpuLog(logFile: string): number {
  return readLogLines(logFile).reduce((sum, [, user, system]) => sum + user! + system!, 0);
}

/**
 * What sampleProcessPeaks saw, by process name (program and command): peak
 * RSS in KiB, and the CPU seconds of its processes that GNU time does not
 * count (none of their ancestors is a GNU time that waits for them).
 */
export interface ProcessSamples {
  peaks: Map<string, number>;
  cpuSeconds: Map<string, number>;
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * Samples the peak RSS (VmHWM) and CPU time of every process whose command
 * line mentions `marker`, such as the bench root: catches detached helpers
 * (pgBackRest's async process, walship's pusher) that GNU time never waits
 * for. A process's CPU time and parent are those of its last sample, so up
 * to `intervalMs` of a process that exits while busy is missed. Returns a
 * stop function.
 */
export function sampleProcessPeaks(marker: string, intervalMs = 200): () => Promise<ProcessSamples> {
  const peaks = new Map<string, number>();
  const seen = new Map<string, { key: string; program: string; parent: string; seconds: number }>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (!cmdline.includes(marker)) continue;
          const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (!hwm) continue;
          const argv = cmdline.split('\0').filter(Boolean);
          // "pgbackrest ... archive-push:async": name a process by its program and command.
          const program = argv[0]?.split('/').at(-1) ?? '?';
          const command = argv.find((arg) => /^(archive-|wal-)/.test(arg)) ?? argv.find((arg) => !arg.startsWith('-') && arg !== argv[0]) ?? '';
          const key = `${program} ${command}`.trim();
          peaks.set(key, Math.max(peaks.get(key) ?? 0, Number(hwm[1])));
          // Fields 4 (ppid), 14 and 15 (utime, stime), counted after the command name, which may hold spaces.
          const fields = readFileSync(`/proc/${pid}/stat`, 'utf8');
          const stat = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
          seen.set(pid, { key, program, parent: stat[1]!, seconds: (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS });
        } catch {
          // the process ended while we looked
        }
      }
      await sleep(intervalMs);
    }
  })();
  return async () => {
    running = false;
    await loop;
    const cpuSeconds = new Map<string, number>();
    const underTime = (pid: string, depth = 0): boolean => {
      const parentPid = seen.get(pid)?.parent ?? '';
      const parent = seen.get(parentPid);
      // The depth bounds a loop that reused pids could make.
      return parent !== undefined && depth < 16 && (parent.program === 'time' || underTime(parentPid, depth + 1));
    };
    for (const [pid, { key, seconds }] of seen) if (!underTime(pid)) cpuSeconds.set(key, (cpuSeconds.get(key) ?? 0) + seconds);
    return { peaks, cpuSeconds };
  };
}

/** Polls `probe` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank, so p90 is a value that was actually measured.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const median = (values: number[]): number => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** "1.23x" for walship's figure over the peer's. */
export function ratio(ours: number, theirs: number): string {
  return Number.isFinite(ours) && Number.isFinite(theirs) && theirs > 0 ? `${(ours / theirs).toFixed(2)}x` : 'n/a';
}

export function markdownTable(headers: string[], rows: string[][]): string[] {
  return [`| ${headers.join(' | ')} |`, `|${headers.map((_, index) => (index === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
}

/** Rotates `items` by `round`, so no contender always runs first (or right after the same one). */
export function rotated<T>(items: T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/**
 * rotated() within each group (a storage target), the groups in the order
 * they first appear: over as many rounds as a group has members, each takes
 * every place once, so none always runs first on a target (or right after
 * the same contender).
 */
export function rotatedInGroups<T>(items: T[], round: number, groupOf: (item: T) => string): T[] {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(groupOf(item), [...(groups.get(groupOf(item)) ?? []), item]);
  return [...groups.values()].flatMap((members) => rotated(members, round));
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}
