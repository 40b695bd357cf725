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
import { readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ReadMethod } from '../config/settings.ts';
import { describeError, NotFoundError } from '../errors.ts';
import { fsyncDirectory, readStateFile, replaceFileQuickly, writeFileAtomically } from '../fs/durable.ts';
import { isMissing, removeLeftover } from '../fs/missing.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from '../postgres/lsn.ts';
import { nextSegmentName, parseWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import type { StorageSpec } from '../storage/spec.ts';
import { PidFile, runBackgroundLoop, spawnDetachedWalship } from './background.ts';
import { fetchWalFile } from './fetch.ts';
import { PREFETCHER_PID_FILE } from './spool.ts';
import { makeDirectories } from '../fs/directories.ts';

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
    this.lock = new PidFile(join(directory, PREFETCHER_PID_FILE));
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
      if (isMissing(error)) return false;
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await writeFileAtomically(destination, createReadStream(source), { mode: 0o600 });
      await removeLeftover(source);
      return true;
    }
    await fsyncDirectory(dirname(destination));
    return true;
  }

  /** Tells the prefetcher which segment recovery asked for last. */
  async noteRequested(name: string): Promise<void> {
    await replaceFileQuickly(join(this.directory, REQUESTED_FILE), name);
  }

  async lastRequested(): Promise<string | undefined> {
    return readStateFile(join(this.directory, REQUESTED_FILE));
  }

  /** Segments ready to serve, by name. */
  async readyNames(): Promise<string[]> {
    return (await readdir(this.directory)).filter((name) => parseWalFileName(name)?.kind === 'segment');
  }

  /**
   * Removes ready segments that recovery has moved past, those before `name`.
   * `name` itself is left to the wal-fetch that asked for it, which takes it
   * right after noting the request: removed in between, it would be downloaded twice.
   */
  async removeBefore(name: string): Promise<void> {
    for (const ready of await this.readyNames()) if (ready < name) await removeLeftover(join(this.directory, ready));
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

/**
 * Downloads in flight: on a local file system each one is CPU work
 * (decompression, checksum), so leave a core to PostgreSQL's redo; over a
 * network, latency is what parallel downloads hide.
 */
function prefetchConcurrency(window: number, localFileSystem: boolean): number {
  return localFileSystem ? Math.max(1, Math.min(window, availableParallelism() - 1)) : window;
}

export interface PrefetcherSettings {
  storage: StorageSpec;
  preferredMethod: ReadMethod;
  /** Segments kept downloaded ahead of recovery (WALG_DOWNLOAD_CONCURRENCY). */
  window: number;
  /** The prefetch area in the spool. */
  directory: string;
  /** The segment served last; prefetching starts after it. */
  after: string;
  segmentSize: number;
}

/**
 * The background prefetcher: keeps the `window` segments after the last
 * requested one downloaded, and exits once recovery stops asking.
 */
export async function runPrefetcher(settings: PrefetcherSettings): Promise<void> {
  const { segmentSize, window } = settings;
  if (!isValidSegmentSize(segmentSize)) return;
  const storage = await openStorage(settings.storage);
  const area = new PrefetchArea(settings.directory);
  await makeDirectories(area.running, 0o700);
  let requested = settings.after;
  await runBackgroundLoop({
    lock: area.lock,
    concurrency: prefetchConcurrency(window, storage.capabilities.localFileSystem),
    pollMs: POLL_MS,
    idleExitMs: IDLE_EXIT_MS,
    retryAfterMs: RETRY_AFTER_MS,
    afterFailedBatch: 'wait',
    start: async () => {
      for (const leftover of await readdir(area.running)) await removeLeftover(join(area.running, leftover));
    },
    nextBatch: async ({ progress, failedRecently }) => {
      const noted = await area.lastRequested();
      if (noted && noted !== requested && parseWalFileName(noted)?.kind === 'segment') {
        requested = noted;
        progress();
      }
      await area.removeBefore(requested);
      const ready = new Set(await area.readyNames());
      const wanted: string[] = [];
      for (let name = requested, i = 0; i < window; i++) {
        name = nextSegmentName(name, segmentSize);
        if (!ready.has(name) && !failedRecently(name)) wanted.push(name);
      }
      return wanted;
    },
    work: async (name) => {
      const running = join(area.running, name);
      await fetchWalFile({ storage, preferredMethod: settings.preferredMethod }, name, running);
      await rename(running, join(area.directory, name));
      return 'done';
    },
    failed: async (name, error) => {
      // Absent is normal past the end of the archive; wal-fetch reports real errors itself.
      if (!(error instanceof NotFoundError)) log.warning(`prefetch of ${name} failed: ${describeError(error)}`);
      await removeLeftover(join(area.running, name));
    },
  });
}
