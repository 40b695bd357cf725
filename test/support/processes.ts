/** Running commands in tests: as the PostgreSQL OS user when we are root. */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { giveToOsUser } from '../../src/postgres/cluster.ts';
import { type RunResult, runCaptured } from '../../src/postgres/programs.ts';
import { isRunning } from '../../src/util/process.ts';
import { helperPidFiles, subdirectories } from '../../src/wal/spool.ts';

export { freePort } from '../../src/util/net.ts';
export type { RunResult };

export const isRoot = process.getuid?.() === 0;
export const POSTGRES_USER = 'postgres';

/** A command that runs longer than this in a test is stuck: it is killed and the test fails. */
const DEFAULT_RUN_TIMEOUT_MS = 180_000;

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  asPostgres?: boolean;
  input?: string;
  timeoutMs?: number;
}

/**
 * Runs a command (as the postgres user when root), never throwing on a
 * non-zero exit. One that does not finish in time is killed with its whole
 * process group, and the run fails with what it printed.
 */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return runCaptured(command, args, options.env ?? process.env, {
    cwd: options.cwd,
    input: options.input,
    timeoutMs: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    osUser: options.asPostgres ? POSTGRES_USER : undefined,
  });
}

/** Like run(), but a non-zero exit is an error carrying the output. */
export async function check(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** Gives a path to the postgres user when we are root, so the server can use it. */
export function giveToPostgres(path: string): void {
  giveToOsUser(path, POSTGRES_USER);
}

/** The pid in one of walship's pid files ("<pid> <start time>"), if the file exists. */
export function pidInFile(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8').split(' ')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Removes a test's directory once the background helpers (pusher, forwarder,
 * prefetcher) whose pid files lie under it have stopped: a helper still
 * writing there would make the removal fail with ENOTEMPTY. Spools are
 * looked for in `root` and its subdirectories.
 */
export async function removeAfterHelpers(root: string): Promise<void> {
  const running = [root, ...subdirectories(root)]
    .flatMap(subdirectories)
    .filter((path) => basename(path).startsWith('.walship-'))
    .flatMap(helperPidFiles)
    .map(pidInFile)
    .filter((pid): pid is number => pid !== undefined && isRunning(pid));
  for (const pid of running) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (running.some(isRunning) && Date.now() < deadline) await sleep(50);
  for (const pid of running.filter(isRunning)) process.kill(pid, 'SIGKILL');
  rmSync(root, { recursive: true, force: true, maxRetries: 5 });
}
