/**
 * Which cluster an archive belongs to. A new cluster (initdb, pg_upgrade)
 * starts again at timeline 1: archiving it into an old cluster's prefix
 * would collide with that cluster's WAL where names meet and mix with it
 * where they do not. So every WAL segment and every backup is
 * checked against the archive's system identifier, kept in
 * walship/archive.json (create-only: the first cluster to write it owns the
 * archive). An archive without it (an older walship's, WAL-G's) is judged
 * by its backups' sentinels, or else by its oldest stored segment.
 *
 * The record also says how the archive is encrypted ("none", or libsodium
 * and the key id), so a host without the key, or with another key, cannot
 * write into it (a restore would stop at the first such object), and a
 * host with a key cannot start encrypting a plaintext archive that other
 * hosts read without one: that switch is deliberate (`encryption-on`).
 */
import { Readable } from 'node:stream';
import { AlreadyExistsError, ConfigError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from '../postgres/lsn.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
import { KEY_SETTINGS } from '../stages/encrypt/encryption.ts';
import { ENCRYPTION_METHOD, type RecordedEncryption } from '../stages/object-metadata.ts';
import { storedFormEncryption } from '../stages/transfer.ts';
import type { Storage } from '../storage/storage.ts';
import { VERSION } from '../version.ts';
import { ARCHIVE_IDENTITY_KEY, classifyKey, WAL_PREFIX } from './layout.ts';
import { readStoredSegmentHeader } from './stored-wal.ts';

/** walship/archive.json. */
interface IdentityDocument {
  SystemIdentifier: string;
  /** wal_segment_size in bytes; absent in records written before walship kept it. */
  WalSegmentSize: number;
  CreatedAt: string;
  WalshipVersion: string;
  /** 'none' or 'libsodium' (a backup sentinel's names); absent in records written before walship kept it. */
  Encryption?: string;
  /** Which key encrypts the archive (stages/encrypt/encryption.ts), never the key. */
  EncryptionKeyId?: string;
}

/** A cluster, as a segment's page header or the server itself describes it. */
export interface ClusterFacts {
  systemIdentifier: string;
  /** wal_segment_size in bytes. */
  segmentSize: number;
}

/** What walship/archive.json records. */
export interface ArchiveRecord {
  systemIdentifier: string;
  walSegmentSize: number | undefined;
  /** Undefined in a record written before walship kept it. */
  encryption: RecordedEncryption | undefined;
}

/** The archive's owner and what says so, for messages. */
interface Owner {
  systemIdentifier: string;
  evidence: string;
  /** What walship/archive.json records of the archive's encryption; undefined where it records nothing (yet). */
  encryption: RecordedEncryption | undefined;
}

/** What a host last verified about an archive it writes to. */
export interface VerifiedArchive {
  systemIdentifier: string;
  /** The encryption it writes with, found to be the archive's: "none" or "libsodium <key id>". */
  encryption: string;
  /** When, in milliseconds since the epoch. */
  verifiedAt: number;
}

/** Where a cluster keeps what it last verified about this archive (look-ahead's per-archive records). */
export interface VerifiedIdentityCache {
  verifiedArchive(): Promise<VerifiedArchive | undefined>;
  rememberArchive(verified: VerifiedArchive): Promise<void>;
}

/**
 * How long a verified answer stands before storage is asked again (one
 * small read): the archive's owner never changes, but its encryption may be
 * switched on (`encryption-on`), and a host without the key must notice.
 */
export const RECHECK_MS = 60_000;

/** An encryption as one comparable word. */
function encryptionName(encryption: RecordedEncryption): string {
  return encryption.method === ENCRYPTION_METHOD ? `${ENCRYPTION_METHOD} ${encryption.keyId ?? ''}` : (encryption.method ?? 'none');
}

/**
 * How a copy's record of the archive's encryption stands to its source's
 * (both walship/archive.json of one cluster): up to date; behind (it
 * records none yet, or "none" where the source switched encryption on with
 * `encryption-on`), so the source's record replaces it; or another (another
 * key, or unencrypted where the copy says encrypted), never mixed.
 */
export function compareCopyEncryption(copy: RecordedEncryption | undefined, source: RecordedEncryption | undefined): 'up-to-date' | 'behind' | 'other' {
  if (!source || (copy && encryptionName(copy) === encryptionName(source))) return 'up-to-date';
  if (!copy || (copy.method === 'none' && source.method === ENCRYPTION_METHOD)) return 'behind';
  return 'other';
}

/** A record's encryption in a message. */
export function describeRecordedEncryption(encryption: RecordedEncryption | undefined): string {
  if (!encryption) return 'no encryption recorded';
  if (encryption.method === ENCRYPTION_METHOD) return `encrypted (${ENCRYPTION_METHOD}, key id ${encryption.keyId})`;
  return encryption.method === 'none' ? 'unencrypted' : `encrypted by "${encryption.method}"`;
}

export class ArchiveIdentity {
  private readonly storage: Storage;
  /** The setting that names the prefix, for the advice to pick another. */
  private readonly prefixSetting: string;
  private readonly cache: VerifiedIdentityCache | undefined;
  private verified: VerifiedArchive | undefined;
  private owner: { reading: Promise<Owner | undefined>; at: number } | undefined;

  constructor(storage: Storage, prefixSetting: string, cache?: VerifiedIdentityCache) {
    this.storage = storage;
    this.prefixSetting = prefixSetting;
    this.cache = cache;
  }

  /**
   * Refuses, with one line saying what happened and what to do, unless the
   * archive belongs to `cluster` and this host writes it encrypted as the
   * archive is; an archive that belongs to no cluster yet becomes its.
   * `source` says where the cluster's facts came from ("pg_wal/... was
   * written by", "the server is"). Once verified, the answer comes from
   * memory or the cache for RECHECK_MS: no storage request per file.
   */
  async requireCluster(cluster: ClusterFacts, source: string): Promise<void> {
    await this.require(cluster, source);
  }

  /**
   * The same for a file that names no cluster (a history or .backup file):
   * refused only when the archive's recorded encryption is not this host's;
   * an archive without a record stays without one.
   */
  async requireEncryption(): Promise<void> {
    await this.require(undefined, '');
  }

  private async require(cluster: ClusterFacts | undefined, source: string): Promise<void> {
    const writing = await storedFormEncryption(this.storage);
    const answers = (verified: VerifiedArchive | undefined) =>
      verified !== undefined &&
      Date.now() - verified.verifiedAt < RECHECK_MS &&
      verified.encryption === encryptionName(writing) &&
      (cluster === undefined || verified.systemIdentifier === cluster.systemIdentifier);
    if (answers(this.verified)) return;
    // Only storage may refuse: a stale cache must never stop archiving.
    const cached = await this.cache?.verifiedArchive();
    if (answers(cached)) {
      this.verified = cached;
      return;
    }
    const owner = await this.readOwner(cluster);
    if (!owner) return; // nothing recorded, and no cluster to record
    if (cluster && owner.systemIdentifier !== cluster.systemIdentifier) {
      throw new WalshipError(
        `the archive in ${this.storage.location} belongs to the cluster with system identifier ${owner.systemIdentifier} (${owner.evidence}), but ${source} cluster ${cluster.systemIdentifier}: after initdb or pg_upgrade, archive into a new prefix (${this.prefixSetting}); nothing was stored`,
      );
    }
    await this.requireSameEncryption(owner, writing);
    this.verified = { systemIdentifier: owner.systemIdentifier, encryption: encryptionName(writing), verifiedAt: Date.now() };
    await this.cache?.rememberArchive(this.verified).catch((error: unknown) => {
      log.info(`could not cache the archive's verified identity: ${(error as Error).message}`);
    });
  }

  /** The archive's owner, read once per RECHECK_MS however many files ask at once; recorded first for `cluster` when nothing records it. */
  private async readOwner(cluster: ClusterFacts | undefined): Promise<Owner | undefined> {
    if (!this.owner || Date.now() - this.owner.at >= RECHECK_MS) {
      const reading = (cluster ? this.findOrRecordOwner(cluster) : this.recordedOwner()).catch((error: unknown) => {
        this.owner = undefined;
        throw error;
      });
      this.owner = { reading, at: Date.now() };
    }
    const owner = await this.owner.reading;
    // A read made for a file without a cluster may have found no record: a segment records one.
    if (!owner && cluster) {
      this.owner = undefined;
      return this.readOwner(cluster);
    }
    return owner;
  }

  /** Refuses a write in another encryption than the archive's; an archive whose record predates encryption records this host's. */
  private async requireSameEncryption(owner: Owner, writing: RecordedEncryption): Promise<void> {
    const key = this.storage.encryption;
    let recorded = owner.encryption;
    let evidence = owner.evidence;
    if (!recorded) {
      const newest = await this.newestBackupEncryption();
      if (newest?.encryption.method !== ENCRYPTION_METHOD || encryptionName(newest.encryption) === encryptionName(writing)) {
        await this.recordEncryption(writing);
        return;
      }
      recorded = newest.encryption;
      evidence = `backup ${newest.backup}`;
    }
    if (encryptionName(recorded) === encryptionName(writing)) return;
    const where = `the archive in ${this.storage.location}`;
    if (recorded.method === ENCRYPTION_METHOD && !key) {
      throw new WalshipError(
        `${where} is encrypted (${ENCRYPTION_METHOD}, key id ${recorded.keyId}, as ${evidence} records), but no key is configured here: set ${KEY_SETTINGS} to the archive's key, as on the hosts that write it encrypted; nothing was stored`,
      );
    }
    if (recorded.method === ENCRYPTION_METHOD) {
      throw new WalshipError(
        `${where} is encrypted with another key (key id ${recorded.keyId}, as ${evidence} records) than the configured one (${key!.origin}, key id ${writing.keyId}): configure the archive's key, or change keys with a new prefix (${this.prefixSetting}); nothing was stored`,
      );
    }
    if (recorded.method === 'none' && key) {
      throw new WalshipError(
        `${where} is recorded as unencrypted (${evidence}), but a key is configured here (${key.origin}): to encrypt its new objects from now on, run \`walship encryption-on\` once with this key, and give the key to every host that writes or restores it; or unset the key; nothing was stored`,
      );
    }
    throw new WalshipError(`${ARCHIVE_IDENTITY_KEY} in ${this.storage.location} records the encryption "${recorded.method}", which walship cannot write; nothing was stored`);
  }

  /** How the newest backup's parts are encrypted, where its sentinel says: evidence for an archive whose record predates encryption. */
  private async newestBackupEncryption(): Promise<{ backup: string; encryption: RecordedEncryption } | undefined> {
    // Once per archive, never on the steady path.
    const [{ ArchiveCatalog }, { partEncryption }] = await Promise.all([import('./catalog.ts'), import('./backups.ts')]);
    const newest = (await ArchiveCatalog.load(this.storage, { wal: false })).backups().at(-1);
    return newest && { backup: newest.BackupName, encryption: partEncryption(newest) };
  }

  /** Adds `encryption` to a record written before walship kept it (its own record: nothing else changes). */
  private async recordEncryption(encryption: RecordedEncryption): Promise<void> {
    const document = await readIdentityDocument(this.storage);
    if (!document || document.Encryption !== undefined) return; // removed, or recorded meanwhile: the next check reads it
    await this.storage.put(ARCHIVE_IDENTITY_KEY, identityBody({ ...document, ...encryptionFieldsOf(encryption) }));
    log.info('recorded how this archive is encrypted', { key: ARCHIVE_IDENTITY_KEY, encryption: encryptionName(encryption) });
  }

  private async findOrRecordOwner(candidate: ClusterFacts): Promise<Owner> {
    const recorded = await this.recordedOwner();
    if (recorded) return recorded;
    const other = await this.otherOwnerInContent(candidate.systemIdentifier);
    if (other) return other;
    // The archive's encryption is this host's, unless its newest backup says otherwise (then the check refuses).
    const writing = await storedFormEncryption(this.storage);
    const newest = await this.newestBackupEncryption();
    const contradicted = newest?.encryption.method === ENCRYPTION_METHOD && encryptionName(newest.encryption) !== encryptionName(writing);
    const document: IdentityDocument = {
      SystemIdentifier: candidate.systemIdentifier,
      WalSegmentSize: candidate.segmentSize,
      CreatedAt: new Date().toISOString(),
      WalshipVersion: VERSION,
      ...(contradicted ? {} : encryptionFieldsOf(writing)),
    };
    try {
      await this.storage.put(ARCHIVE_IDENTITY_KEY, identityBody(document), { createOnly: true });
      log.info('recorded the cluster this archive belongs to', { key: ARCHIVE_IDENTITY_KEY, systemIdentifier: candidate.systemIdentifier });
      return { systemIdentifier: candidate.systemIdentifier, evidence: ARCHIVE_IDENTITY_KEY, encryption: contradicted ? undefined : writing };
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      // Another cluster, or another push of this one, recorded it first.
      const winner = await this.recordedOwner();
      if (!winner) throw new WalshipError(`${ARCHIVE_IDENTITY_KEY} in ${this.storage.location} was created and then removed while walship recorded it`);
      return winner;
    }
  }

  private async recordedOwner(): Promise<Owner | undefined> {
    const record = await readArchiveRecord(this.storage);
    return record && { systemIdentifier: record.systemIdentifier, evidence: ARCHIVE_IDENTITY_KEY, encryption: record.encryption };
  }

  /**
   * For an archive with no record of its owner: a backup of another cluster,
   * or, without backups, an oldest stored segment of another cluster.
   */
  private async otherOwnerInContent(candidate: string): Promise<Owner | undefined> {
    const { ArchiveCatalog } = await import('./catalog.ts'); // once per archive, never on the steady path
    const catalog = await ArchiveCatalog.load(this.storage, { wal: false });
    for (const { backup, reason } of catalog.unreadableSentinels()) log.info(`backup ${backup} does not say which cluster it came from: ${reason}`);
    const origins = catalog.backupOrigins();
    if (origins.length > 0) {
      const other = origins.find((origin) => origin.systemIdentifier !== candidate);
      return other && { systemIdentifier: other.systemIdentifier, evidence: `backup ${other.backup}`, encryption: undefined };
    }
    const oldest = await this.oldestSegmentOwner();
    return oldest && oldest.systemIdentifier !== candidate ? oldest : undefined;
  }

  /** The cluster that wrote the first segment stored, when walship can read it. */
  private async oldestSegmentOwner(): Promise<Owner | undefined> {
    for await (const object of this.storage.list(WAL_PREFIX)) {
      const kind = classifyKey(object.key);
      if (kind.kind !== 'wal' || !codecForExtension(kind.extension)) continue;
      if (kind.file.kind !== 'segment' && kind.file.kind !== 'partial') continue;
      // A storage failure leaves the question open; only the content itself may be unreadable.
      const reading = await readStoredSegmentHeader(this.storage, object.key, kind.extension);
      if ('header' in reading) return { systemIdentifier: reading.header.systemIdentifier, evidence: `its oldest segment, ${object.key}`, encryption: undefined };
      log.info(`cannot tell which cluster wrote ${object.key}: ${reading.unreadable}`);
      return undefined;
    }
    return undefined;
  }
}

export type EncryptionSwitch =
  /** walship/archive.json records the archive as encrypted with this key from now on. */
  | 'switched'
  /** It did already. */
  | 'already'
  /** There is no walship/archive.json yet: the first push records the archive, encrypted with the configured key. */
  | 'unrecorded';

/**
 * `encryption-on`: records that the archive's new objects are encrypted with
 * the configured key, the deliberate switch of a plaintext archive (older
 * objects stay readable: their metadata says unencrypted). Another key is
 * refused: keys change with a new prefix.
 */
export async function switchOnEncryption(storage: Storage, prefixSetting: string): Promise<{ outcome: EncryptionSwitch; keyId: string }> {
  const writing = await storedFormEncryption(storage);
  if (writing.method !== ENCRYPTION_METHOD) {
    throw new ConfigError(`encryption-on encrypts the archive with the configured key, and none is: set ${KEY_SETTINGS}`);
  }
  const keyId = writing.keyId!;
  const document = await readIdentityDocument(storage);
  if (!document) return { outcome: 'unrecorded', keyId };
  if (document.Encryption === ENCRYPTION_METHOD) {
    if (document.EncryptionKeyId === keyId) return { outcome: 'already', keyId };
    throw new WalshipError(
      `the archive in ${storage.location} is encrypted with another key (key id ${document.EncryptionKeyId}, as ${ARCHIVE_IDENTITY_KEY} records) than the configured one (${storage.encryption!.origin}, key id ${keyId}): change keys with a new prefix (${prefixSetting}); nothing was changed`,
    );
  }
  await storage.put(ARCHIVE_IDENTITY_KEY, identityBody({ ...document, ...encryptionFieldsOf(writing) }));
  log.info('recorded that this archive is encrypted from now on', { key: ARCHIVE_IDENTITY_KEY, keyId });
  return { outcome: 'switched', keyId };
}

/** walship/archive.json as stored. */
function identityBody(document: IdentityDocument): Readable {
  return Readable.from([Buffer.from(`${JSON.stringify(document, null, 2)}\n`)]);
}

function encryptionFieldsOf(encryption: RecordedEncryption): Pick<IdentityDocument, 'Encryption' | 'EncryptionKeyId'> {
  return encryption.method === ENCRYPTION_METHOD ? { Encryption: ENCRYPTION_METHOD, EncryptionKeyId: encryption.keyId } : { Encryption: 'none' };
}

/** walship/archive.json's document; undefined when there is none; a damaged one is refused with the way to repair it. */
async function readIdentityDocument(storage: Storage): Promise<IdentityDocument | undefined> {
  let text: string;
  try {
    const stored = await storage.get(ARCHIVE_IDENTITY_KEY);
    const chunks: Buffer[] = [];
    for await (const chunk of stored.body) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  let document: Partial<IdentityDocument> | undefined;
  try {
    document = JSON.parse(text) as Partial<IdentityDocument>;
  } catch {
    // reported below
  }
  if (typeof document?.SystemIdentifier !== 'string' || !/^\d+$/.test(document.SystemIdentifier)) {
    throw new WalshipError(
      `${ARCHIVE_IDENTITY_KEY} in ${storage.location} is damaged (no SystemIdentifier): restore it with the system identifier of the cluster that archives here (SELECT system_identifier FROM pg_control_system())`,
    );
  }
  return document as IdentityDocument;
}

/** What walship/archive.json records; undefined when there is none; a damaged one is refused with the way to repair it. */
export async function readArchiveRecord(storage: Storage): Promise<ArchiveRecord | undefined> {
  const document = await readIdentityDocument(storage);
  if (!document) return undefined;
  const walSegmentSize = typeof document.WalSegmentSize === 'number' && isValidSegmentSize(document.WalSegmentSize) ? document.WalSegmentSize : undefined;
  const encryption = typeof document.Encryption === 'string'
    ? { method: document.Encryption, ...(typeof document.EncryptionKeyId === 'string' ? { keyId: document.EncryptionKeyId } : {}) }
    : undefined;
  return { systemIdentifier: document.SystemIdentifier, walSegmentSize, encryption };
}
