/**
 * The look-ahead records of one archive, kept in the spool (a hash of the
 * archive's identity names the directory):
 *
 *   <name>         a record: <name> is durable in that archive
 *   <name>.claim   pid of the process uploading <name> now
 *   .pusher.pid    pid of the pusher
 *   .identity      the cluster the archive was verified to belong to, and its encryption
 *
 * A record is only ever written after its upload is durable, and it names the
 * exact file (device, inode, size, mtime) and archive: a lost record costs one
 * re-check against storage, and a stale one never matches another file or
 * another archive.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VerifiedArchive, VerifiedIdentityCache } from '../../archive/identity.ts';
import { readStateFile, replaceFileQuickly } from '../../fs/durable.ts';
import { ignoreMissing, removeLeftover } from '../../fs/missing.ts';
import { log } from '../../log/logger.ts';
import { parseWalFileName } from '../../postgres/wal-name.ts';
import { PidFile } from '../background.ts';
import { PUSHER_PID_FILE } from '../spool.ts';

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

/** Records of WAL files uploaded ahead of the archiver, one small file each. */
export class ArchivedRecords implements VerifiedIdentityCache {
  readonly directory: string;
  readonly pusher: PidFile;
  /** The archive these records are about (its StorageSpec identity); a record for another one never counts. */
  private readonly archive: string;

  constructor(directory: string, archive: string) {
    this.directory = directory;
    this.archive = archive;
    this.pusher = new PidFile(join(directory, PUSHER_PID_FILE));
  }

  async record(name: string, path: string): Promise<void> {
    const record: UploadRecord = { ...(await identityOf(path)), archive: this.archive };
    await replaceFileQuickly(join(this.directory, name), JSON.stringify(record));
  }

  /** What a push from this cluster last verified about this archive. */
  async verifiedArchive(): Promise<VerifiedArchive | undefined> {
    const cached = parseRecord<Partial<VerifiedArchive> & { archive?: string }>(await readStateFile(join(this.directory, IDENTITY_FILE)));
    if (cached?.archive !== this.archive) return undefined;
    const { systemIdentifier, encryption, verifiedAt } = cached;
    return typeof systemIdentifier === 'string' && typeof encryption === 'string' && typeof verifiedAt === 'number' ? { systemIdentifier, encryption, verifiedAt } : undefined;
  }

  async rememberArchive(verified: VerifiedArchive): Promise<void> {
    await replaceFileQuickly(join(this.directory, IDENTITY_FILE), JSON.stringify({ archive: this.archive, ...verified }));
  }

  /** True when `path` was uploaded ahead to this archive; the record is used up either way. */
  async consume(name: string, path: string): Promise<boolean> {
    const vouched = await this.vouchesFor(name, path);
    await this.forget(name);
    return vouched;
  }

  /** True when the record for `name` names exactly the file at `path`, in this archive. */
  async vouchesFor(name: string, path: string): Promise<boolean> {
    const recorded = parseRecord<UploadRecord>(await readStateFile(join(this.directory, name)));
    if (recorded?.archive !== this.archive) return false;
    const current = await identityOf(path).catch(ignoreMissing);
    return current !== undefined && sameIdentity(recorded, current);
  }

  /** Which of the `waiting` files have a record. Records of files no longer waiting were used or made moot, and are removed. */
  async recordedAmong(waiting: string[]): Promise<Set<string>> {
    const waitingSet = new Set(waiting);
    const recorded = new Set<string>();
    for (const name of await this.names()) {
      if (waitingSet.has(name)) recorded.add(name);
      else await this.forget(name);
    }
    return recorded;
  }

  /** Names with a record. */
  private async names(): Promise<string[]> {
    return (await readdir(this.directory)).filter((name) => parseWalFileName(name) !== undefined);
  }

  async forget(name: string): Promise<void> {
    await removeLeftover(join(this.directory, name));
  }

  /** Whether a live process holds a claim, that is, is uploading a file now. */
  async uploadInProgress(): Promise<boolean> {
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

/** A record's content; undefined when absent or damaged (a full disk can leave it empty): it then vouches for nothing. */
function parseRecord<T>(text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}
