/**
 * Background walship processes (the look-ahead pusher, the prefetcher): one
 * per cluster and job, found through a pid file, started detached by the
 * same binary so walship need not be on PATH.
 */
import { closeSync, openSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { isSea } from 'node:sea';
import { isRunning } from '../util/process.ts';

/**
 * When a process started, in clock ticks since boot (field 22 of
 * /proc/<pid>/stat), to tell it from a later process given the same pid.
 * Undefined where /proc is not available.
 */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** What this process writes into the claims it takes. */
let ownClaim: Promise<string> | undefined;

/**
 * An exclusive claim held by one live process: a file holding its pid and
 * start time. A claim left by a process that died never counts, even once its
 * pid is reused: otherwise an archive_command could wait on a stranger.
 */
export class PidFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** The live process holding the claim, if any. */
  async holder(): Promise<number | undefined> {
    const [pidText = '', recordedStart] = (await readFile(this.path, 'utf8').catch(() => '')).split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return undefined;
    const start = recordedStart && (await startTimeOf(pid));
    return start && start !== recordedStart ? undefined : pid;
  }

  /** Takes the claim for this process; false when another live process holds it. */
  async acquire(): Promise<boolean> {
    ownClaim ??= startTimeOf(process.pid).then((start) => (start ? `${process.pid} ${start}` : String(process.pid)));
    const content = await ownClaim;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.path, content, { flag: 'wx' });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (await this.holder()) return false;
        await unlink(this.path).catch(() => undefined); // left by a process that died
      }
    }
    return false;
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}

/** Starts `walship <args>` detached, its output appended to `logPath`. */
export function spawnDetachedWalship(args: string[], configPath: string | undefined, logPath: string): void {
  const self = isSea() ? [] : [process.argv[1]!];
  // Loaded only here: child_process is costly to load on archive_command's hot path.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const logFd = openSync(logPath, 'w', 0o600);
  try {
    const child = spawn(process.execPath, [...self, ...(configPath ? ['--config', configPath] : []), ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    child.unref();
  } finally {
    closeSync(logFd);
  }
}
