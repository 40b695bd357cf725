/**
 * What every benchmark shares: the context run.ts hands them, timing whole
 * processes the way PostgreSQL runs archive_command (`/bin/sh -c`, as the
 * postgres OS user, in the data directory), peak RSS, statistics and
 * markdown tables.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { giveToPostgres, isRoot, POSTGRES_USER } from '../../test/support/processes.ts';

export interface BenchContext {
  /** Fewer repetitions and a smaller backlog, for a quick look (--quick). */
  quick: boolean;
  /** Runs per contender of the long benchmarks (drain, replay): 1 unless --rounds N. */
  rounds: number;
  /** Extra walship contenders for drain, replay and sustained: a name and settings (--variant NAME:SETTING=VALUE,...). */
  variants: { name: string; settings: Record<string, string> }[];
  /** The walship binary under test: a private copy of dist/walship, readable by postgres. */
  walship: string;
  /** A postgres-owned scratch directory for this run, removed at the end. */
  root: string;
  log(message: string): void;
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
  /** User plus system CPU seconds of the waited-for processes (GNU time %U + %S): on a busy machine, steadier than wall time. */
  cpuSeconds: number;
  stderr: string;
}

/**
 * Runs `command` with `/bin/sh -c` as postgres, timing the whole process from
 * spawn to exit. GNU time records the peak RSS; its own fork/exec (about a
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
  const [maxRssKiB = 0, user = 0, system = 0] = (rssText.trim().split('\n').at(-1) ?? '').split(' ').map((field) => Number(field) || 0);
  return { ms: Number(ended - started) / 1e6, code, maxRssKiB, cpuSeconds: user + system, stderr };
}

/** Wraps an archive_command/restore_command so each call appends its peak RSS (KiB) to `logFile`. */
export function withRssLog(command: string, logFile: string): string {
  // After any leading NAME=value assignments, which the shell then exports to time and the command.
  return command.replace(/^((?:[A-Za-z_][A-Za-z0-9_]*=\S* )*)/, `$1/usr/bin/time -a -f %M -o ${logFile} `);
}

export function readRssLog(logFile: string): number[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((value) => Number.isFinite(value) && value > 0);
}

/**
 * Samples the peak RSS (VmHWM) of every process whose command line mentions
 * `marker`, such as the bench root: catches detached helpers (pgBackRest's
 * async process) that GNU time never waits for. Returns a stop function.
 */
export function sampleProcessPeaks(marker: string, intervalMs = 200): () => Promise<Map<string, number>> {
  const peaks = new Map<string, number>();
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
    return peaks;
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

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}
