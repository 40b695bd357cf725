/**
 * Background walship processes (the look-ahead pusher, the prefetcher): one
 * per cluster and job, found through a pid file, started detached by the
 * same binary so walship need not be on PATH, and run by one loop.
 */
import { closeSync, type FSWatcher, openSync, watch } from 'node:fs';
import { link, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { readStateFile } from '../fs/durable.ts';
import { removeLeftover } from '../fs/missing.ts';
import { reclaimBuffersPast } from '../stages/reclaim.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { stopYoungGenerationGrowth } from '../util/memory.ts';
import { isRunning } from '../util/process.ts';
import { walshipCommand } from '../util/self.ts';

/**
 * A process's state (field 3 of /proc/<pid>/stat: Z for a zombie, which has
 * exited and waits for its parent to reap it) and when it started, in clock
 * ticks since boot (field 22), to tell it from a later process given the same
 * pid. Undefined where /proc is not available.
 */
async function processStat(pid: number): Promise<{ state: string; start: string } | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // no /proc, or another user's process under hidepid: the pid alone decides
  }
  // The command name (field 2) may hold spaces and parentheses: count from its end.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, start: fields[19]! };
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
    const [pidText = '', recordedStart] = ((await readStateFile(this.path)) ?? '').split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return undefined;
    const stat = await processStat(pid);
    // A killed process stays a zombie until reaped, which a container's init may put off.
    if (stat?.state === 'Z') return undefined;
    return recordedStart && stat && stat.start !== recordedStart ? undefined : pid;
  }

  /**
   * Takes the claim for this process; false when another live process holds
   * it. The claim is written aside and linked into place, so it appears
   * whole: one still being written never passes for a dead holder's.
   */
  async acquire(): Promise<boolean> {
    ownClaim ??= processStat(process.pid).then((stat) => (stat ? `${process.pid} ${stat.start}` : String(process.pid)));
    const written = `${this.path}.${process.pid}`;
    await writeFile(written, await ownClaim);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await link(written, this.path);
          return true;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
          if (await this.holder()) return false;
          await removeLeftover(this.path); // left by a process that died
        }
      }
      return false;
    } finally {
      await removeLeftover(written);
    }
  }

  async release(): Promise<void> {
    await removeLeftover(this.path);
  }
}

/** Starts `walship <args>` detached, its output appended to `logPath`. */
export function spawnDetachedWalship(args: string[], configPath: string | undefined, logPath: string): void {
  const [program, ...self] = walshipCommand();
  // Loaded only here: child_process is costly to load on archive_command's hot path.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const logFd = openSync(logPath, 'w', 0o600);
  try {
    const child = spawn(program!, [...self, ...(configPath ? ['--config', configPath] : []), ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    child.unref();
  } finally {
    closeSync(logFd);
  }
}

/** What runBackgroundLoop offers a loop's work. */
export interface LoopContext {
  /** News that keeps the loop alive (a success counts by itself). */
  progress(): void;
  /** Whether `item` failed within the retry delay, and is best left out of the next batch. */
  failedRecently(item: string): boolean;
}

/** A background job: batches of items worked on a few at a time, by the one process that holds the lock. */
export interface BackgroundLoop {
  /** Held by the one process doing this job; another finds it taken and returns at once. */
  lock: PidFile;
  /** Items worked on at once. */
  concurrency: number;
  /** The wait when there is nothing to do, unless the loop has directories to watch and can watch them. */
  pollMs: number;
  /**
   * Directories where a change (a name appearing, going, renamed) may bring
   * work: with nothing to do the loop waits for one, `fallbackMs` at most,
   * since a watch can miss changes.
   */
  watch?: { directories: string[]; fallbackMs: number };
  /** The loop ends once this long passes without progress. */
  idleExitMs: number;
  /** How long a failed item counts as failed recently. */
  retryAfterMs: number;
  /** After a batch in which items failed and none succeeded: stop, leaving the work to others, or wait a poll and go on. */
  afterFailedBatch: 'stop' | 'wait';
  /** Runs once the lock is held, before the first batch. */
  start?(): Promise<void>;
  /** The items to work on now; none waits for a change (or a poll). */
  nextBatch(context: LoopContext): Promise<string[]>;
  /** Works on one item: 'skipped' when another process has it. A failure throws, and goes to failed(). */
  work(item: string): Promise<'done' | 'skipped'>;
  /** Reports a failed item: background work has nobody to return its errors to. */
  failed(item: string, error: unknown): Promise<void>;
}

/**
 * Wakes a loop that has nothing to do when one of its directories changes (an
 * inotify watch), so an idle loop costs no CPU. A watch can miss changes (on
 * some network and FUSE file systems it sees only this host's), so a wait
 * still ends after the loop's fallback timeout; where a watch cannot start,
 * or fails later, the loop polls as it did before there were watches.
 */
class ChangeWaker {
  private readonly directories: string[];
  private readonly watchers: FSWatcher[] = [];
  /** A watch could not start, or failed: the loop polls from then on. */
  private unwatchable = false;
  private changed = false;
  private wake: (() => void) | undefined;

  constructor(directories: string[]) {
    this.directories = directories;
  }

  get watching(): boolean {
    return this.watchers.length > 0;
  }

  /**
   * Watches the directories (again), forgetting earlier changes: called as
   * the loop looks for work, so that a change from then on cuts its next wait short.
   */
  watch(): void {
    this.changed = false;
    if (this.watching || this.unwatchable) return;
    try {
      for (const directory of this.directories) {
        // Not persistent: the wait's own timer keeps the process alive, a watch never does.
        const watcher = watch(directory, { persistent: false }, () => this.noteChange());
        watcher.on('error', () => this.giveUp());
        this.watchers.push(watcher);
      }
    } catch {
      this.giveUp(); // no inotify here, or out of watches
    }
  }

  /**
   * Stops watching while the loop works: its own writes there (a download
   * filling its file) would only cost a callback each.
   */
  stop(): void {
    for (const watcher of this.watchers.splice(0)) watcher.close();
    this.wake?.(); // a wait for changes no longer watched ends now
  }

  /** Waits `ms`, or less: until a change since watch(). */
  wait(ms: number): Promise<void> {
    if (this.changed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake?.(), ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private giveUp(): void {
    this.unwatchable = true;
    this.stop();
  }

  private noteChange(): void {
    this.changed = true;
    this.wake?.();
  }
}

/**
 * Buffers dropped by finished items stay allocated until V8's next full
 * collection, which it starts only once about 64 MiB of them wait: with a
 * few uploads in flight that held the pusher near 200 MB of RSS. Past this
 * much buffer memory the loop collects them itself after an item.
 */
const RECLAIM_BUFFERS_PAST = 32 << 20;

/** Runs `loop` until it is idle (or stops after a failed batch); returns at once if another process holds its lock. */
export async function runBackgroundLoop(loop: BackgroundLoop): Promise<void> {
  if (!(await loop.lock.acquire())) return;
  stopYoungGenerationGrowth();
  let waker: ChangeWaker | undefined;
  try {
    await loop.start?.();
    const failedAt = new Map<string, number>();
    let lastProgress = Date.now();
    const context: LoopContext = {
      progress: () => void (lastProgress = Date.now()),
      failedRecently: (item) => Date.now() - (failedAt.get(item) ?? -Infinity) <= loop.retryAfterMs,
    };
    /** Without a change, the loop still has to look again when the idle exit is due, or the retry of a failed item. */
    const longestWait = (fallbackMs: number) => {
      const now = Date.now();
      let wait = Math.min(fallbackMs, lastProgress + loop.idleExitMs - now);
      for (const at of failedAt.values()) {
        const retryDue = at + loop.retryAfterMs + 1 - now;
        if (retryDue > 0) wait = Math.min(wait, retryDue);
      }
      return Math.max(1, wait);
    };
    waker = new ChangeWaker(loop.watch?.directories ?? []);
    while (Date.now() - lastProgress < loop.idleExitMs) {
      waker.watch();
      const batch = await loop.nextBatch(context);
      if (batch.length === 0) {
        await waker.wait(loop.watch && waker.watching ? longestWait(loop.watch.fallbackMs) : loop.pollMs);
        continue;
      }
      waker.stop();
      let succeeded = 0;
      let failed = 0;
      await forEachConcurrently(batch, loop.concurrency, async (item) => {
        try {
          if ((await loop.work(item)) === 'skipped') return;
          succeeded++;
          failedAt.delete(item);
          context.progress();
        } catch (error) {
          failed++;
          failedAt.set(item, Date.now());
          await loop.failed(item, error);
        } finally {
          reclaimBuffersPast(RECLAIM_BUFFERS_PAST);
        }
      });
      if (failed > 0 && succeeded === 0) {
        if (loop.afterFailedBatch === 'stop') return;
        await sleep(loop.pollMs);
      }
    }
  } finally {
    waker?.stop();
    await loop.lock.release();
  }
}
