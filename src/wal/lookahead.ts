/**
 * Look-ahead archiving. PostgreSQL's archiver runs archive_command for one
 * file at a time. walship keeps one detached pusher per cluster and archive
 * working ahead of it: it uploads the waiting `.ready` files in parallel and
 * records each one once it is durable, so the archiver's calls for them
 * return at once without touching storage, while the pusher keeps the other
 * core busy. In the spool, per archive (a hash of its settings):
 *
 *   archived/<archive>/<name>         a record: <name> is durable in that archive
 *   archived/<archive>/<name>.claim   pid of the process uploading <name> now
 *   archived/<archive>/.pusher.pid    pid of the pusher
 *   archived/<archive>/.identity      the cluster the archive was verified to belong to
 *
 * A record is only ever written after its upload is durable, and it names the
 * exact file (device, inode, size, mtime) and archive: a lost record costs one
 * re-check against storage, and a stale one never matches another file or
 * another archive.
 */
import { availableParallelism } from 'node:os';
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VerifiedIdentityCache } from '../archive/identity.ts';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { parseWalFileName } from '../postgres/wal-name.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { PidFile, spawnDetachedWalship } from './background.ts';

interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** What a record vouches for: exactly this file, durable in exactly this archive. */
interface UploadRecord extends FileIdentity {
  archive: string;
}

async function identityOf(path: string): Promise<FileIdentity> {
  const { dev, ino, size, mtimeMs } = await stat(path);
  return { dev, ino, size, mtimeMs };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

const CLAIM_SUFFIX = '.claim';
const IDENTITY_FILE = '.identity';
/** How often a waiting archive_command looks for the pusher's record. */
const CLAIM_POLL_MS = 5;
/** How long an archive_command waits for the pusher's upload of its file before doing it itself. */
const CLAIM_WAIT_LIMIT_MS = 60_000;
/** How long an archive_command waits for uploads in progress, to mark them done too. */
const MARK_DONE_WAIT_MS = 1_000;
/** How often it looks for uploads finished meanwhile: no hurry, the archiver is waiting anyway. */
const MARK_DONE_POLL_MS = 25;
/** A pusher with nothing to do for this long exits. */
const PUSHER_IDLE_EXIT_MS = 5_000;
const PUSHER_POLL_MS = 20;

/** Records of WAL files uploaded ahead of the archiver, one small file each. */
export class ArchivedRecords implements VerifiedIdentityCache {
  readonly directory: string;
  readonly pusher: PidFile;
  /** The archive these records are about (storageIdentity); a record for another one never counts. */
  private readonly archive: string;

  constructor(directory: string, archive: string) {
    this.directory = directory;
    this.archive = archive;
    this.pusher = new PidFile(join(directory, '.pusher.pid'));
  }

  async record(name: string, path: string): Promise<void> {
    const record: UploadRecord = { ...(await identityOf(path)), archive: this.archive };
    await this.replace(name, record);
  }

  /** Writes a file of the directory whole or not at all. */
  private async replace(name: string, content: object): Promise<void> {
    const file = join(this.directory, name);
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(content));
    await rename(temp, file);
  }

  /** The system identifier this archive was last verified to belong to, by a push from this cluster. */
  async verifiedSystemIdentifier(): Promise<string | undefined> {
    try {
      const cached = JSON.parse(await readFile(join(this.directory, IDENTITY_FILE), 'utf8')) as { archive?: string; systemIdentifier?: string };
      return cached.archive === this.archive ? cached.systemIdentifier : undefined;
    } catch {
      return undefined;
    }
  }

  async rememberSystemIdentifier(systemIdentifier: string): Promise<void> {
    await this.replace(IDENTITY_FILE, { archive: this.archive, systemIdentifier });
  }

  /** True when `path` was uploaded ahead to this archive; the record is used up either way. */
  async consume(name: string, path: string): Promise<boolean> {
    const vouched = await this.vouchesFor(name, path);
    await this.forget(name);
    return vouched;
  }

  /** True when the record for `name` names exactly the file at `path`, in this archive. */
  private async vouchesFor(name: string, path: string): Promise<boolean> {
    let recorded: UploadRecord;
    try {
      recorded = JSON.parse(await readFile(join(this.directory, name), 'utf8')) as UploadRecord;
    } catch {
      return false;
    }
    if (recorded.archive !== this.archive) return false;
    try {
      return sameIdentity(recorded, await identityOf(path));
    } catch {
      return false;
    }
  }

  /**
   * Marks the recorded files other than `current` as archived in
   * PostgreSQL's archive_status (`.ready` to `.done`), so the archiver skips
   * them instead of running archive_command once per file. The archiver
   * checks that a file's `.ready` is still there before archiving it, for
   * this very reason. Called from within the archiver's own archive_command,
   * while it waits, so it never races the archiver's rename. The newest
   * waiting file is left to the archiver, so pg_stat_archiver's
   * last_archived_wal still ends up at the newest file archived.
   *
   * While other uploads are in progress it waits for them and marks them
   * too, for at most `waitMs`: one archive_command then answers for a whole
   * batch, and the CPU time another walship start would take goes to
   * compression instead. Returns the names marked.
   */
  async markDone(walDirectory: string, current: string, waitMs = MARK_DONE_WAIT_MS): Promise<string[]> {
    const marked: string[] = [];
    const deadline = Date.now() + waitMs;
    for (;;) {
      marked.push(...(await this.markRecordedDone(walDirectory, current)));
      if (Date.now() >= deadline || !(await this.uploadInProgress())) return marked;
      await sleep(MARK_DONE_POLL_MS);
    }
  }

  private async markRecordedDone(walDirectory: string, current: string): Promise<string[]> {
    const status = join(walDirectory, 'archive_status');
    const { waiting, recorded } = await this.waitingFiles(walDirectory);
    const newest = waiting.at(-1);
    const marked: string[] = [];
    for (const name of recorded) {
      if (name === current || name === newest || !(await this.vouchesFor(name, join(walDirectory, name)))) continue;
      try {
        await rename(join(status, `${name}.ready`), join(status, `${name}.done`));
        marked.push(name);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      await this.forget(name);
    }
    return marked;
  }

  /**
   * The files waiting for the archiver, in its order, and those of them with
   * a record. Records of files no longer waiting were used or made moot, and
   * are removed here.
   */
  async waitingFiles(walDirectory: string): Promise<{ waiting: string[]; recorded: Set<string> }> {
    const waiting = await readyFiles(walDirectory);
    const waitingSet = new Set(waiting);
    const recorded = new Set<string>();
    for (const name of await this.names()) {
      if (waitingSet.has(name)) recorded.add(name);
      else await this.forget(name);
    }
    return { waiting, recorded };
  }

  /** Names with a record. */
  private async names(): Promise<string[]> {
    return (await readdir(this.directory)).filter((name) => parseWalFileName(name) !== undefined);
  }

  async forget(name: string): Promise<void> {
    await unlink(join(this.directory, name)).catch(() => undefined);
  }

  /** Whether a live process holds a claim, that is, is uploading a file now. */
  private async uploadInProgress(): Promise<boolean> {
    for (const entry of await readdir(this.directory)) {
      if (entry.endsWith(CLAIM_SUFFIX) && (await new PidFile(join(this.directory, entry)).holder())) return true;
    }
    return false;
  }

  /** The right to upload `name`, so two processes never upload the same file at once. */
  claim(name: string): PidFile {
    return new PidFile(join(this.directory, `${name}${CLAIM_SUFFIX}`));
  }

  /**
   * When another live process is uploading `name`, waits until it is done and
   * reports whether it left a record for exactly `path`. Waits at most
   * `limitMs`: past that the caller uploads the file itself, which is safe
   * (an identical object is accepted) and keeps a stuck pusher from stopping
   * archiving.
   */
  async awaitOtherUpload(name: string, path: string, limitMs = CLAIM_WAIT_LIMIT_MS): Promise<boolean> {
    const claim = this.claim(name);
    if (!(await claim.holder())) return false;
    const deadline = Date.now() + limitMs;
    while (await claim.holder()) {
      if (Date.now() > deadline) {
        log.info(`${name} has been uploading in another process for ${limitMs / 1000} s; uploading it here too`);
        return false;
      }
      await sleep(CLAIM_POLL_MS);
    }
    return this.consume(name, path);
  }
}

/** The order PostgreSQL's archiver uses: timeline history files first, then oldest first. */
function archivingOrder(a: string, b: string): number {
  const aHistory = a.endsWith('.history');
  const bHistory = b.endsWith('.history');
  if (aHistory !== bHistory) return aHistory ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Files waiting for the archiver, in its order. */
async function readyFiles(walDirectory: string): Promise<string[]> {
  const statusNames = await readdir(join(walDirectory, 'archive_status'));
  return statusNames
    .filter((name) => name.endsWith('.ready'))
    .map((name) => name.slice(0, -'.ready'.length))
    .filter((name) => parseWalFileName(name) !== undefined)
    .sort(archivingOrder);
}

/** Starts the cluster's pusher when files other than `current` wait and no pusher is running. */
export async function startPusher(records: ArchivedRecords, walDirectory: string, configPath: string | undefined, current: string): Promise<void> {
  if ((await readyFiles(walDirectory)).every((name) => name === current)) return;
  if (await records.pusher.holder()) return;
  spawnDetachedWalship(['wal-push-ahead', walDirectory, records.directory], configPath, join(records.directory, 'pusher.log'));
}

export interface PusherOptions {
  walDirectory: string;
  records: ArchivedRecords;
  /** Uploads in flight (WALG_UPLOAD_CONCURRENCY, at most the CPUs for local storage). */
  concurrency: number;
  /** Records waiting for the archiver at most (TOTAL_BG_UPLOADED_LIMIT). */
  limit: number;
  /** Uploads one file; `waiting` is how many files wait for the archiver now. */
  push(path: string, waiting: number): Promise<unknown>;
}

/**
 * Over a network, a few uploads in flight hide the latency; each holds up to
 * two 8 MiB parts of a segment, so more would only cost memory.
 */
const NETWORK_UPLOADS_IN_FLIGHT = 4;

/**
 * Locally, one upload more than the CPUs, so no CPU idles while an upload
 * waits for its reads and fsyncs; a few over a network.
 */
export function pusherConcurrency(uploadConcurrency: number, storageIsLocal: boolean): number {
  return Math.min(uploadConcurrency, storageIsLocal ? availableParallelism() + 1 : NETWORK_UPLOADS_IN_FLIGHT);
}

/**
 * The pusher: uploads waiting files ahead of the archiver and records them,
 * never more than `limit` records ahead, and exits once nothing is waiting.
 * Failures are only logged: the archiver will ask for those files itself
 * and get a proper answer.
 */
export async function runPusher(options: PusherOptions): Promise<void> {
  const { walDirectory, records } = options;
  if (!(await records.pusher.acquire())) return;
  try {
    const failedAt = new Map<string, number>();
    let lastWork = Date.now();
    while (Date.now() - lastWork < PUSHER_IDLE_EXIT_MS) {
      const { waiting: ready, recorded } = await records.waitingFiles(walDirectory);
      const room = options.limit - recorded.size;
      const candidates = ready
        .filter((name) => !recorded.has(name) && Date.now() - (failedAt.get(name) ?? 0) > 1000)
        .slice(0, Math.max(0, room));
      if (candidates.length === 0) {
        // Nothing to do, perhaps because the archiver is not asking: exit after a while.
        await sleep(PUSHER_POLL_MS);
        continue;
      }
      lastWork = Date.now();
      let succeeded = 0;
      let failed = 0;
      await forEachConcurrently(candidates, options.concurrency, async (name) => {
        const claim = records.claim(name);
        if (!(await claim.acquire())) return; // the archiver itself is uploading it
        const path = join(walDirectory, name);
        try {
          await options.push(path, ready.length);
          await records.record(name, path);
          succeeded++;
        } catch (error) {
          failed++;
          failedAt.set(name, Date.now());
          log.info(`look-ahead upload of ${name} failed; the archiver will retry it: ${describeError(error)}`);
        } finally {
          await claim.release();
        }
      });
      // Nothing got through (storage down?): leave the retrying to the archiver.
      if (failed > 0 && succeeded === 0) break;
    }
  } finally {
    await records.pusher.release();
  }
}
