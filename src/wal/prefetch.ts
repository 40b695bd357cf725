/**
 * Prefetching for restore_command. PostgreSQL replays WAL and asks for the
 * next file only when it needs it, so walship downloads the following
 * segments in the background while replay runs, into an area of its own for
 * each archive and each recovery:
 *
 *   <root>/<archive key>/<postmaster pid>-<postmaster start>/running/<segment>   being downloaded
 *   <root>/<archive key>/<postmaster pid>-<postmaster start>/<segment>           complete and verified
 *
 * A file appears under its final name only once complete and verified (a
 * rename), so nothing still being written is ever served. The archive key is
 * a hash of the storage settings and the recovery key names the server run
 * (postmaster.pid), so a segment prefetched for another archive, another
 * cluster or an earlier recovery is never served; segment names carry the
 * timeline, so neither is a segment of another timeline. The restore_command
 * fast path (restore-command.ts) relies on exactly these rules.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { access, constants, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadMethod } from '../config/settings.ts';
import { describeError, NotFoundError } from '../errors.ts';
import { fsyncDirectory, readStateFile, replaceFileQuickly, sweepAbandonedTempFiles, writeFileAtomically } from '../fs/durable.ts';
import { isMissing, removeLeftover } from '../fs/missing.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from '../postgres/lsn.ts';
import { nextSegmentName, parseWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import type { StorageSpec } from '../storage/spec.ts';
import { isRunning } from '../util/process.ts';
import { PidFile, runBackgroundLoop, spawnDetachedWalship } from './background.ts';
import { fetchWalFile } from './fetch.ts';
import { PREFETCHER_PID_FILE } from './spool.ts';
import { makeDirectories } from '../fs/directories.ts';

const REQUESTED_FILE = '.requested';
/** The prefetcher's log, in its area, truncated by each prefetcher. */
const PREFETCH_LOG = 'prefetch.log';
/** In an area: a marker per segment being downloaded. */
const RUNNING = 'running';
/** A prefetcher with nothing new to do for this long exits. */
const IDLE_EXIT_MS = 15_000;
/** Where no watch works: how often an idle prefetcher looks for work. */
const POLL_MS = 50;
/** With a watch: how long an idle prefetcher waits for a change at most, in case its watch missed one. */
const WATCH_FALLBACK_MS = 1000;
/** How long a segment that was absent (past the end of the archive) or failed is left alone. */
const RETRY_AFTER_MS = 1000;
/** The longest wal-fetch waits for the prefetcher's download of the segment it wants before downloading it itself. */
const IN_FLIGHT_WAIT_MS = 30_000;
const IN_FLIGHT_POLL_MS = 5;

/** The directory name of one archive's prefetch areas: a hash of its storage settings, the same in the shell fast path. */
export function archiveKey(storageIdentity: string): string {
  return createHash('sha256').update(storageIdentity).digest('hex').slice(0, 16);
}

/**
 * The server run this restore_command belongs to, `<pid>-<start time>` from
 * postmaster.pid (lines 1 and 3) in the data directory, the working
 * directory; undefined when no server runs there (a manual call, pg_rewind).
 */
export async function recoveryKey(dataDirectory: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  const [pid, , start] = text.split('\n');
  return /^\d+$/.test(pid ?? '') && /^\d+$/.test(start ?? '') ? `${pid}-${start}` : undefined;
}

/**
 * This recovery's area under `root`, created if needed. `created` is true for
 * the wal-fetch that made it, the first of its recovery, which also removes
 * the areas of this archive's earlier recoveries whose server is gone.
 */
export async function openRecoveryArea(root: string, storageIdentity: string, recovery: string): Promise<{ area: PrefetchArea; created: boolean }> {
  const archiveDirectory = join(root, archiveKey(storageIdentity));
  await makeDirectories(archiveDirectory, 0o700);
  const area = new PrefetchArea(join(archiveDirectory, recovery));
  try {
    await mkdir(area.directory, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Left by a run as another user, it would fail every take: better no prefetching.
    await access(area.directory, constants.W_OK | constants.X_OK);
    return { area, created: false };
  }
  for (const earlier of await readdir(archiveDirectory)) {
    const postmaster = Number(earlier.split('-')[0]);
    if (earlier !== recovery && !isRunning(postmaster)) await rm(join(archiveDirectory, earlier), { recursive: true, force: true });
  }
  await removeSingleAreaLayout(root);
  return { area, created: true };
}

/** What a prefetcher of the single-area layout left directly in the root, besides segments and temp files. */
const SINGLE_AREA_FILES = new Set([PREFETCHER_PID_FILE, REQUESTED_FILE, RUNNING, PREFETCH_LOG]);

/**
 * Before the areas per archive and recovery, the spool's prefetch/ was itself
 * the one area: segments, running/, the prefetcher's pid file and notes
 * directly in it. Nothing reads them any more; they go once no prefetcher of
 * that layout runs (helperPidFiles finds one that does).
 */
async function removeSingleAreaLayout(root: string): Promise<void> {
  if (await new PidFile(join(root, PREFETCHER_PID_FILE)).holder()) return;
  for (const entry of await readdir(root)) {
    const leftover = parseWalFileName(entry)?.kind === 'segment' || SINGLE_AREA_FILES.has(entry) || entry.startsWith(`${PREFETCHER_PID_FILE}.`);
    if (leftover) await rm(join(root, entry), { recursive: true, force: true });
  }
  await sweepAbandonedTempFiles(root, 0);
}

export class PrefetchArea {
  readonly directory: string;
  readonly running: string;
  /** Held by the one prefetcher working on this area. */
  readonly lock: PidFile;

  constructor(directory: string) {
    this.directory = directory;
    this.running = join(directory, RUNNING);
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

  /**
   * Waits while the prefetcher is downloading `name` (bounded), so that
   * wal-fetch takes its download instead of starting a second one.
   */
  async waitForInFlight(name: string): Promise<void> {
    const marker = join(this.running, name);
    const deadline = Date.now() + IN_FLIGHT_WAIT_MS;
    let holderCheckedAt = 0;
    while (await exists(marker)) {
      if (Date.now() > deadline) {
        log.info(`the prefetcher's download of ${name} is taking over ${IN_FLIGHT_WAIT_MS / 1000} s: downloading it here`);
        return;
      }
      // A marker left by a killed prefetcher must not hold recovery up.
      if (Date.now() - holderCheckedAt > 500) {
        if (!(await this.lock.holder())) return;
        holderCheckedAt = Date.now();
      }
      await sleep(IN_FLIGHT_POLL_MS);
    }
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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

/**
 * Starts a detached prefetcher after `name` was served, unless one is already
 * running: that one follows the requests through the `.requested` note.
 */
export async function startPrefetcher(area: PrefetchArea, name: string, segmentSize: number, configPath: string | undefined): Promise<void> {
  if (await area.lock.holder()) return;
  spawnDetachedWalship(['wal-prefetch', name, String(segmentSize), area.directory], configPath, join(area.directory, PREFETCH_LOG));
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
 * The background prefetcher: keeps the `window` segments after the last one
 * recovery took downloaded, and exits once recovery stops taking them. It
 * follows recovery on its own: a segment it completed that is gone from the
 * area was taken (by wal-fetch, or by the restore_command fast path, which
 * never runs walship), and a wal-fetch that missed notes its request.
 */
export async function runPrefetcher(settings: PrefetcherSettings): Promise<void> {
  const { segmentSize, window } = settings;
  if (!isValidSegmentSize(segmentSize)) return;
  const storage = await openStorage(settings.storage);
  const area = new PrefetchArea(settings.directory);
  await makeDirectories(area.running, 0o700);
  const concurrency = prefetchConcurrency(window, storage.capabilities.localFileSystem);
  let requested = settings.after;
  /** Segments this prefetcher put in the area, until recovery takes them. */
  const completed = new Set<string>();
  await runBackgroundLoop({
    lock: area.lock,
    concurrency,
    pollMs: POLL_MS,
    // A segment taken from the area, or a request noted there.
    watch: { directories: [area.directory], fallbackMs: WATCH_FALLBACK_MS },
    idleExitMs: IDLE_EXIT_MS,
    retryAfterMs: RETRY_AFTER_MS,
    afterFailedBatch: 'wait',
    start: async () => {
      // Left by a prefetcher that was killed: its markers and its partial downloads.
      for (const leftover of await readdir(area.running)) await removeLeftover(join(area.running, leftover));
      await sweepAbandonedTempFiles(area.directory, 0);
    },
    nextBatch: async ({ progress, failedRecently }) => {
      const ready = new Set(await area.readyNames());
      let followed = requested;
      for (const name of completed) {
        if (ready.has(name)) continue;
        completed.delete(name);
        if (name > followed) followed = name;
      }
      const noted = await area.lastRequested();
      if (noted && noted > followed && parseWalFileName(noted)?.kind === 'segment') followed = noted;
      if (followed !== requested) {
        requested = followed;
        progress();
      }
      await area.removeBefore(requested);
      const wanted: string[] = [];
      for (let name = requested, i = 0; i < window && wanted.length < concurrency; i++) {
        name = nextSegmentName(name, segmentSize);
        if (!ready.has(name) && !failedRecently(name)) wanted.push(name);
      }
      return wanted;
    },
    work: async (name) => {
      // The marker tells wal-fetch that this segment is on its way; the download itself appears whole, under its name.
      const marker = join(area.running, name);
      await writeFile(marker, '', { mode: 0o600 });
      try {
        await fetchWalFile({ storage, preferredMethod: settings.preferredMethod }, name, join(area.directory, name));
      } finally {
        await removeLeftover(marker);
      }
      completed.add(name);
      return 'done';
    },
    failed: async (name, error) => {
      // Absent is normal past the end of the archive; wal-fetch reports real errors itself.
      if (!(error instanceof NotFoundError)) log.warning(`prefetch of ${name} failed: ${describeError(error)}`);
    },
  });
}
