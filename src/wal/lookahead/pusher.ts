/**
 * The look-ahead pusher (wal-push-ahead). PostgreSQL's archiver runs
 * archive_command for one file at a time; wal-push starts one detached pusher
 * per cluster and archive to work ahead of it (wal/archiving.ts). It uploads
 * the waiting `.ready` files in parallel and records each one once it is
 * durable, so the archiver's calls for them return at once without touching
 * storage, while the pusher keeps the other cores busy. It exits once nothing
 * is waiting.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ArchiveIdentity } from '../../archive/identity.ts';
import type { CompressionSettings } from '../../config/settings.ts';
import { describeError } from '../../errors.ts';
import { log } from '../../log/logger.ts';
import { openStorage } from '../../storage/open.ts';
import type { StorageSpec } from '../../storage/spec.ts';
import { runBackgroundLoop } from '../background.ts';
import { pushWalFile } from '../push.ts';
import { waitingFiles } from './archive-status.ts';
import { CopyQueue } from './copy-queue.ts';
import { ArchivedRecords } from './records.ts';

/** A pusher with nothing to do for this long exits. */
const PUSHER_IDLE_EXIT_MS = 5_000;
/** Where no watch works: how often an idle pusher looks for work. */
const PUSHER_POLL_MS = 20;
/** With watches: how long an idle pusher waits for a change at most, in case its watches missed one. */
const PUSHER_WATCH_FALLBACK_MS = 1000;
/** A file whose upload failed is left to the archiver for this long. */
const RETRY_AFTER_MS = 1000;

/**
 * Over a network, a few uploads in flight hide the latency; each holds up to
 * two 8 MiB parts of a segment, so more would only cost memory.
 */
const NETWORK_UPLOADS_IN_FLIGHT = 4;

/**
 * From this many waiting files on, the pusher on a local file system
 * compresses on every CPU (in the thread pool) to catch up. Below it, keeping
 * up, it compresses on its main thread, which costs less CPU per file and so
 * leaves more to PostgreSQL. Over a network uploads wait on the network, not
 * the CPU, and main-thread compression also holds less memory.
 */
const CATCH_UP_BACKLOG = 8;

/**
 * Locally, one upload more than the CPUs, so no CPU idles while an upload
 * waits for its reads and fsyncs; a few over a network.
 */
function pusherConcurrency(uploadConcurrency: number, localFileSystem: boolean): number {
  return Math.min(uploadConcurrency, localFileSystem ? availableParallelism() + 1 : NETWORK_UPLOADS_IN_FLIGHT);
}

export interface PusherSettings {
  storage: StorageSpec;
  compression: CompressionSettings;
  preventOverwrite: boolean;
  /** WALG_UPLOAD_CONCURRENCY: uploads in flight at most, fewer where they would only cost memory. */
  uploadConcurrency: number;
  /** Records waiting for the archiver at most (TOTAL_BG_UPLOADED_LIMIT). */
  limit: number;
  /** The cluster's pg_wal. */
  walDirectory: string;
  /** This archive's records in the spool. */
  recordsDirectory: string;
  /** The config files of the copies (WALSHIP_COPIES): each file uploaded is queued for them. */
  copies: string[];
}

/**
 * The pusher: uploads waiting files ahead of the archiver and records them,
 * never more than `limit` records ahead, and exits once nothing is waiting.
 * Failures are only logged: the archiver will ask for those files itself
 * and get a proper answer; when nothing gets through (storage down?) the
 * pusher leaves the retrying to it.
 */
export async function runPusher(settings: PusherSettings): Promise<void> {
  const { walDirectory, compression, preventOverwrite } = settings;
  const storage = await openStorage(settings.storage);
  const records = new ArchivedRecords(settings.recordsDirectory, settings.storage.identity);
  const identity = new ArchiveIdentity(storage, settings.storage.prefixSetting, records);
  const { localFileSystem } = storage.capabilities;
  const concurrency = pusherConcurrency(settings.uploadConcurrency, localFileSystem);
  // The copies as the last wal-push was configured: a copy added after the pusher started gets its uploads too.
  const copies = new CopyQueue(settings.recordsDirectory);
  const copiesNow = async () => {
    const configured = await copies.configured();
    return configured.length > 0 ? configured : settings.copies;
  };
  let waitingCount = 0;
  await runBackgroundLoop({
    lock: records.pusher,
    concurrency,
    pollMs: PUSHER_POLL_MS,
    // New .ready files, and room under the limit as the archiver uses up records.
    watch: { directories: [join(walDirectory, 'archive_status'), settings.recordsDirectory], fallbackMs: PUSHER_WATCH_FALLBACK_MS },
    idleExitMs: PUSHER_IDLE_EXIT_MS,
    retryAfterMs: RETRY_AFTER_MS,
    afterFailedBatch: 'stop',
    nextBatch: async ({ progress, failedRecently }) => {
      const { waiting, recorded } = await waitingFiles(records, walDirectory);
      waitingCount = waiting.length;
      const room = Math.max(0, settings.limit - recorded.size);
      const batch = waiting.filter((name) => !recorded.has(name) && !failedRecently(name)).slice(0, room);
      // Work keeps the pusher alive; without any (perhaps the archiver is not asking) it exits after a while.
      if (batch.length > 0) progress();
      return batch;
    },
    work: async (name) => {
      const claim = records.claim(name);
      if (!(await claim.acquire())) return 'skipped'; // the archiver itself is uploading it
      const path = join(walDirectory, name);
      try {
        const compressInThreadPool = localFileSystem && concurrency > 1 && waitingCount >= CATCH_UP_BACKLOG;
        await pushWalFile({ storage, compression, preventOverwrite, identity, compressInThreadPool }, path);
        await records.record(name, path);
        // Every wal-push makes sure the copies' forwarder runs.
        await copiesNow()
          .then((targets) => (targets.length > 0 ? copies.add(name, targets) : undefined))
          .catch((error: unknown) => log.info(`${name} reaches the copies with the next walship copy: ${describeError(error)}`));
        return 'done';
      } finally {
        await claim.release();
      }
    },
    failed: async (name, error) => log.info(`look-ahead upload of ${name} failed; the archiver will retry it: ${describeError(error)}`),
  });
}
