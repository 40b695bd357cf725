/**
 * Background walship processes (the look-ahead pusher, the prefetcher): one
 * per cluster and job, found through a pid file, started detached by the
 * same binary so walship need not be on PATH.
 */
import { closeSync, openSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { isSea } from 'node:sea';
import { isRunning } from '../util/process.ts';

/** An exclusive claim held by one live process: a file holding its pid. */
export class PidFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** The live process holding the claim, if any. */
  async holder(): Promise<number | undefined> {
    const pid = Number(await readFile(this.path, 'utf8').catch(() => ''));
    return Number.isInteger(pid) && pid > 0 && isRunning(pid) ? pid : undefined;
  }

  /** Takes the claim for this process; false when another live process holds it. */
  async acquire(): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.path, String(process.pid), { flag: 'wx' });
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
