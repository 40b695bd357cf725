/**
 * The copies' forwarder (wal-copy-ahead): the WAL files wal-push queued once
 * they were durable in the main storage (wal/lookahead/copy-queue.ts) go on
 * to each copy, read back from the main storage and relayed as stored,
 * checked on the way as `walship copy` checks them. It runs detached, one per
 * cluster and archive, started by wal-push, so WAL reaches the copies within
 * seconds and archive_command never waits for them.
 *
 * It serves the copies the last wal-push was configured with, so a copy
 * added to WALSHIP_COPIES or removed from it is followed at once. A copy that
 * cannot be reached is retried with a growing pause (its files wait in the
 * queue, and the forwarder stays until they are through); a queue longer
 * than the backlog limit loses its oldest files to the next `walship copy`,
 * which finds them in the listings.
 */
import { RECHECK_MS } from '../archive/identity.ts';
import { openStoredWal } from '../archive/stored-wal.ts';
import type { CompressionMethod } from '../config/settings.ts';
import { describeError, IntegrityError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { relayStages } from '../stages/transfer.ts';
import { openStorage } from '../storage/open.ts';
import type { StorageSpec } from '../storage/spec.ts';
import type { Storage } from '../storage/storage.ts';
import { runBackgroundLoop } from '../wal/background.ts';
import { CopyQueue } from '../wal/lookahead/copy-queue.ts';
import { followArchiveRecord, OtherArchiveError, readRecords, requireSameCluster } from './identity.ts';
import { relay } from './relay.ts';

export interface ForwarderSettings {
  source: StorageSpec;
  /** The compression method wal-push stores with: the extension to look under first. */
  method: CompressionMethod;
  /** Opens the copy a config file names. */
  open(copy: string): Promise<Storage>;
  recordsDirectory: string;
  /** WALG_UPLOAD_CONCURRENCY: files in flight at most. */
  uploadConcurrency: number;
  /** Files a copy's queue holds at most (WALSHIP_COPY_BACKLOG); older ones are left to walship copy. */
  backlogLimit: number;
}

/** Over a network a few in flight hide the latency; every copy here is relayed over one. */
const FILES_IN_FLIGHT = 4;
const BATCH_LIMIT = 64;
const POLL_MS = 250;
/** Nothing waiting for this long: the forwarder exits, and the next wal-push starts it again. */
const IDLE_EXIT_MS = 60_000;
const RETRY_AFTER_MS = 1_000;
/** The pause before a copy that failed is tried again doubles, up to this. */
const MAX_PAUSE_MS = 60_000;
/** A copy that holds another cluster's archive is tried again only this rarely. */
const REFUSED_PAUSE_MS = 10 * 60_000;

/** What the forwarder knows of one copy. */
class CopyState {
  /** The copy's config file, which names its queue. */
  readonly path: string;
  private readonly open: () => Promise<Storage>;
  private opened: Promise<Storage> | undefined;
  /** Opened, and checked to hold this cluster's archive, at checkedAt. */
  private checked: Promise<Storage> | undefined;
  private checkedAt = 0;
  pausedUntil = 0;
  private failures = 0;

  constructor(path: string, open: () => Promise<Storage>) {
    this.path = path;
    this.open = open;
  }

  /** The copy, its record of the archive checked and brought up to date again every RECHECK_MS (encryption-on may switch the source's). */
  target(source: Storage): Promise<Storage> {
    if (this.checked && Date.now() - this.checkedAt >= RECHECK_MS) this.checked = undefined;
    this.checked ??= (async () => {
      this.checkedAt = Date.now();
      this.opened ??= this.open();
      const target = await this.opened;
      const [sourceRecord, targetRecord] = await readRecords(source, target);
      requireSameCluster({ storage: source, record: sourceRecord }, { storage: target, record: targetRecord });
      await followArchiveRecord({ storage: source, record: sourceRecord }, { storage: target, record: targetRecord });
      return target;
    })();
    this.checked.catch(() => {
      this.opened = undefined;
      this.checked = undefined;
    });
    return this.checked;
  }

  succeeded(): void {
    if (this.failures > 0) log.warning(`copy ${this.path} is reachable again: its backlog is on its way`);
    this.failures = 0;
  }

  /** Pauses the copy, and says so once per outage. */
  failed(error: unknown, waiting: number): void {
    const refused = error instanceof OtherArchiveError;
    if (this.failures === 0) (refused ? log.error : log.warning).call(log, `copy ${this.path} failed, ${waiting} WAL file${waiting === 1 ? '' : 's'} wait for it (retrying): ${describeError(error)}`);
    this.failures++;
    this.pausedUntil = Date.now() + (refused ? REFUSED_PAUSE_MS : Math.min(MAX_PAUSE_MS, RETRY_AFTER_MS * 2 ** this.failures));
  }
}

export async function runForwarder(settings: ForwarderSettings): Promise<void> {
  const queue = new CopyQueue(settings.recordsDirectory);
  const source = await openStorage(settings.source);
  const states = new Map<string, CopyState>();
  const waitingCounts = new Map<string, number>();
  /** The copies as wal-push is configured now: a copy added or removed meanwhile is followed. */
  const follow = async (): Promise<CopyState[]> => {
    const configured = await queue.configured();
    if (configured.length !== states.size || configured.some((copy) => !states.has(copy))) {
      const dropped = await queue.dropOthers(configured);
      if (dropped > 0) log.warning(`dropped ${dropped} queued WAL files of copies no longer in WALSHIP_COPIES`);
      for (const copy of [...states.keys()]) if (!configured.includes(copy)) states.delete(copy);
      for (const copy of configured) if (!states.has(copy)) states.set(copy, new CopyState(copy, () => settings.open(copy)));
    }
    return [...states.values()];
  };
  const parse = (item: string) => {
    const [copy, name] = JSON.parse(item) as [string, string];
    return { state: states.get(copy), name };
  };
  do {
    await runBackgroundLoop({
      lock: queue.forwarder,
      concurrency: Math.min(settings.uploadConcurrency, FILES_IN_FLIGHT),
      pollMs: POLL_MS,
      idleExitMs: IDLE_EXIT_MS,
      retryAfterMs: RETRY_AFTER_MS,
      afterFailedBatch: 'wait',
      nextBatch: async ({ progress, failedRecently }) => {
        const batch: string[] = [];
        for (const state of await follow()) {
          const waiting = await bounded(queue, state.path, settings.backlogLimit);
          waitingCounts.set(state.path, waiting.length);
          // Files waiting keep the forwarder here, even while their copy is paused.
          if (waiting.length > 0) progress();
          if (Date.now() < state.pausedUntil) continue;
          for (const name of waiting) {
            if (batch.length >= BATCH_LIMIT) break;
            const item = JSON.stringify([state.path, name]);
            if (!failedRecently(item)) batch.push(item);
          }
        }
        return batch;
      },
      work: async (item) => {
        const { state, name } = parse(item);
        if (!state || Date.now() < state.pausedUntil) return 'skipped';
        await forwardFile(source, await state.target(source), name, settings.method, state.path);
        state.succeeded();
        await queue.done(state.path, name);
        return 'done';
      },
      failed: async (item, error) => {
        const { state } = parse(item);
        if (state && Date.now() >= state.pausedUntil) state.failed(error, waitingCounts.get(state.path) ?? 0);
      },
    });
    // Idle: a file queued as the loop ended would otherwise wait for the next wal-push.
  } while (!(await queue.forwarder.holder()) && (await queue.anyWaiting()));
}

/** The queue of one copy, cut to the newest `limit` files; the oldest are left to walship copy. */
async function bounded(queue: CopyQueue, copy: string, limit: number): Promise<string[]> {
  const waiting = await queue.waiting(copy);
  if (waiting.length <= limit) return waiting;
  const dropped = waiting.slice(0, waiting.length - limit);
  for (const name of dropped) await queue.done(copy, name);
  log.warning(`${waiting.length} WAL files wait for copy ${copy}, more than WALSHIP_COPY_BACKLOG=${limit}: the oldest ${dropped.length}, ${dropped[0]} to ${dropped.at(-1)}, are left to walship copy`);
  return waiting.slice(-limit);
}

/**
 * Relays WAL file `name` from the main storage to a copy. What only concerns
 * that file (gone from the main storage, different content at the copy, a
 * stored object that fails its check) is logged and the file dropped from
 * the queue; storage failures are thrown, and the file waits.
 */
async function forwardFile(source: Storage, target: Storage, name: string, method: CompressionMethod, copy: string): Promise<void> {
  const found = await openStoredWal(source, name, method);
  if (!found) {
    log.info(`${name} is no longer in ${source.location} (deleted by retention?): not forwarded to copy ${copy}`);
    return;
  }
  try {
    const outcome = await relay(found.stored, target, { checks: (stored) => relayStages(source, found.codec, stored), reopen: () => source.get(found.stored.info.key) });
    if (outcome.kind === 'different') log.error(`${found.stored.info.key}: ${outcome.detail}; not overwritten (walship copy reports it too)`);
  } catch (error) {
    if (!(error instanceof IntegrityError)) throw error;
    log.error(`${error.message}: not forwarded to copy ${copy}`);
  }
}
