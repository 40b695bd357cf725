/**
 * Prefetching for restore_command. PostgreSQL replays WAL and asks for the
 * next file only when it needs it, so walship downloads the following
 * segments in the background while replay runs:
 *
 *   <spool>/prefetch/running/<segment>   being downloaded and verified
 *   <spool>/prefetch/<segment>           complete and verified, ready to serve
 *
 * A file appears under its final name only once complete, so wal-fetch never
 * serves one that is still being written. Segment names carry the timeline,
 * so a segment of another timeline is never served for the one requested.
 */
import { createReadStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, NotFoundError } from '../errors.ts';
import { fsyncDirectory, writeFileAtomically } from '../fs/durable.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from '../postgres/lsn.ts';
import { nextSegmentName, parseWalFileName } from '../postgres/wal-name.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { PidFile, spawnDetachedWalship } from './background.ts';

const LOCK_FILE = '.prefetcher.pid';
const REQUESTED_FILE = '.requested';
/** A prefetcher with nothing new to do for this long exits. */
const IDLE_EXIT_MS = 15_000;
const POLL_MS = 50;
/** How long a segment that was absent (past the end of the archive) or failed is left alone. */
const RETRY_AFTER_MS = 1000;

export class PrefetchArea {
  readonly directory: string;
  readonly running: string;
  /** Held by the one prefetcher working on this area. */
  readonly lock: PidFile;

  constructor(directory: string) {
    this.directory = directory;
    this.running = join(directory, 'running');
    this.lock = new PidFile(join(directory, LOCK_FILE));
  }

  /**
   * Moves a prefetched `name` to `destination`, durably. False when it is not
   * prefetched. A rename where possible, a verified-content copy across file systems.
   */
  async take(name: string, destination: string): Promise<boolean> {
    const source = join(this.directory, name);
    try {
      await rename(source, destination);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code !== 'EXDEV') throw error;
      await writeFileAtomically(destination, createReadStream(source), { mode: 0o600 });
      await unlink(source).catch(() => undefined);
      return true;
    }
    await fsyncDirectory(dirname(destination));
    return true;
  }

  /** Tells the prefetcher which segment recovery asked for last. */
  async noteRequested(name: string): Promise<void> {
    const temp = join(this.directory, `${REQUESTED_FILE}.${process.pid}`);
    await writeFile(temp, name);
    await rename(temp, join(this.directory, REQUESTED_FILE));
  }

  async lastRequested(): Promise<string | undefined> {
    return readFile(join(this.directory, REQUESTED_FILE), 'utf8').catch(() => undefined);
  }

  /** Segments ready to serve, by name. */
  async readyNames(): Promise<string[]> {
    return (await readdir(this.directory)).filter((name) => parseWalFileName(name)?.kind === 'segment');
  }

  /** Removes ready segments that recovery has moved past, up to and including `name`. */
  async removeUpTo(name: string): Promise<void> {
    for (const ready of await this.readyNames()) if (ready <= name) await unlink(join(this.directory, ready)).catch(() => undefined);
  }

}

/**
 * Starts a detached prefetcher after `name` was served, unless one is already
 * running: that one follows the requests through the `.requested` note.
 */
export async function startPrefetcher(area: PrefetchArea, name: string, segmentSize: number, configPath: string | undefined): Promise<void> {
  if (await area.lock.holder()) return;
  // Its log goes to a file in the prefetch area, truncated by each prefetcher.
  spawnDetachedWalship(['wal-prefetch', name, String(segmentSize), area.directory], configPath, join(area.directory, 'prefetch.log'));
}

export interface PrefetcherOptions {
  area: PrefetchArea;
  /** The segment served last; prefetching starts after it. */
  after: string;
  segmentSize: number;
  /** Segments kept downloaded ahead of recovery (WALG_DOWNLOAD_CONCURRENCY). */
  window: number;
  /** Downloads in flight at most. */
  concurrency: number;
  fetch(name: string, destination: string): Promise<void>;
}

/**
 * Downloads in flight: on local storage each one is CPU work (decompression,
 * checksum), so leave a core to PostgreSQL's redo; over a network, latency
 * is what parallel downloads hide.
 */
export function prefetchConcurrency(window: number, storageIsLocal: boolean): number {
  return storageIsLocal ? Math.max(1, Math.min(window, availableParallelism() - 1)) : window;
}

/**
 * The background prefetcher: keeps the `window` segments after the last
 * requested one downloaded, and exits once recovery stops asking.
 */
export async function runPrefetcher(options: PrefetcherOptions): Promise<void> {
  const { area, segmentSize, window } = options;
  if (!isValidSegmentSize(segmentSize)) return;
  await mkdir(area.running, { recursive: true, mode: 0o700 });
  if (!(await area.lock.acquire())) return;
  try {
    for (const leftover of await readdir(area.running)) await unlink(join(area.running, leftover)).catch(() => undefined);
    let requested = options.after;
    let lastProgress = Date.now();
    const backoff = new Map<string, number>(); // name -> when it was last absent or failed
    while (Date.now() - lastProgress < IDLE_EXIT_MS) {
      const noted = await area.lastRequested();
      if (noted && noted !== requested && parseWalFileName(noted)?.kind === 'segment') {
        requested = noted;
        lastProgress = Date.now();
      }
      await area.removeUpTo(requested);
      const ready = new Set(await area.readyNames());
      const wanted: string[] = [];
      for (let name = requested, i = 0; i < window; i++) {
        name = nextSegmentName(name, segmentSize);
        const failedAt = backoff.get(name);
        if (!ready.has(name) && (failedAt === undefined || Date.now() - failedAt > RETRY_AFTER_MS)) wanted.push(name);
      }
      if (wanted.length === 0) {
        await sleep(POLL_MS);
        continue;
      }
      await forEachConcurrently(wanted, options.concurrency, async (name) => {
        const running = join(area.running, name);
        try {
          await options.fetch(name, running);
          await rename(running, join(area.directory, name));
          backoff.delete(name);
          lastProgress = Date.now();
        } catch (error) {
          // Absent is normal past the end of the archive; wal-fetch reports real errors itself.
          if (!(error instanceof NotFoundError)) log.warning(`prefetch of ${name} failed: ${describeError(error)}`);
          backoff.set(name, Date.now());
          await unlink(running).catch(() => undefined);
        }
      });
      if (wanted.every((name) => backoff.has(name))) await sleep(POLL_MS);
    }
  } finally {
    await area.lock.release();
  }
}
