/**
 * Which cluster an archive belongs to. A new cluster (initdb, pg_upgrade)
 * starts again at timeline 1: archiving it into an old cluster's prefix
 * would collide with that cluster's WAL where names meet and mix with it
 * where they do not. So every WAL segment and every backup is
 * checked against the archive's system identifier, kept in
 * walship/archive.json (create-only: the first cluster to write it owns the
 * archive). An archive without it (an older walship's, WAL-G's) is judged
 * by its backups' sentinels, or else by its oldest stored segment.
 */
import { Readable } from 'node:stream';
import { AlreadyExistsError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from '../postgres/lsn.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
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
}

/** The archive's owner and what says so, for messages. */
interface Owner {
  systemIdentifier: string;
  evidence: string;
}

/** Where a cluster keeps the identity it last verified for this archive (look-ahead's per-archive records). */
export interface VerifiedIdentityCache {
  verifiedSystemIdentifier(): Promise<string | undefined>;
  rememberSystemIdentifier(systemIdentifier: string): Promise<void>;
}

export class ArchiveIdentity {
  private readonly storage: Storage;
  /** The setting that names the prefix, for the advice to pick another. */
  private readonly prefixSetting: string;
  private readonly cache: VerifiedIdentityCache | undefined;
  private verified: string | undefined;
  private owner: Promise<Owner> | undefined;

  constructor(storage: Storage, prefixSetting: string, cache?: VerifiedIdentityCache) {
    this.storage = storage;
    this.prefixSetting = prefixSetting;
    this.cache = cache;
  }

  /**
   * Refuses, with one line saying what happened and what to do, unless the
   * archive belongs to `cluster`; an archive that belongs to no cluster yet
   * becomes its. `source` says where the cluster's facts came from
   * ("pg_wal/... was written by", "the server is"). Once verified, the
   * answer comes from memory or the cache: no storage request per file.
   */
  async requireCluster(cluster: ClusterFacts, source: string): Promise<void> {
    const { systemIdentifier } = cluster;
    if (this.verified === systemIdentifier) return;
    const cached = await this.cache?.verifiedSystemIdentifier();
    if (cached !== systemIdentifier) {
      // Only storage may refuse: a stale cache must never stop archiving.
      this.owner ??= this.findOrRecordOwner(cluster).catch((error: unknown) => {
        this.owner = undefined;
        throw error;
      });
      const owner = await this.owner;
      if (owner.systemIdentifier !== systemIdentifier) {
        throw new WalshipError(
          `the archive in ${this.storage.location} belongs to the cluster with system identifier ${owner.systemIdentifier} (${owner.evidence}), but ${source} cluster ${systemIdentifier}: after initdb or pg_upgrade, archive into a new prefix (${this.prefixSetting}); nothing was stored`,
        );
      }
      await this.cache?.rememberSystemIdentifier(systemIdentifier).catch((error: unknown) => {
        log.info(`could not cache the archive's verified identity: ${(error as Error).message}`);
      });
    }
    this.verified = systemIdentifier;
  }

  private async findOrRecordOwner(candidate: ClusterFacts): Promise<Owner> {
    const recorded = await this.recordedOwner();
    if (recorded) return recorded;
    const other = await this.otherOwnerInContent(candidate.systemIdentifier);
    if (other) return other;
    const document: IdentityDocument = {
      SystemIdentifier: candidate.systemIdentifier,
      WalSegmentSize: candidate.segmentSize,
      CreatedAt: new Date().toISOString(),
      WalshipVersion: VERSION,
    };
    try {
      await this.storage.put(ARCHIVE_IDENTITY_KEY, Readable.from([Buffer.from(`${JSON.stringify(document, null, 2)}\n`)]), { createOnly: true });
      log.info('recorded the cluster this archive belongs to', { key: ARCHIVE_IDENTITY_KEY, systemIdentifier: candidate.systemIdentifier });
      return { systemIdentifier: candidate.systemIdentifier, evidence: ARCHIVE_IDENTITY_KEY };
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
    return record && { systemIdentifier: record.systemIdentifier, evidence: ARCHIVE_IDENTITY_KEY };
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
      return other && { systemIdentifier: other.systemIdentifier, evidence: `backup ${other.backup}` };
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
      if ('header' in reading) return { systemIdentifier: reading.header.systemIdentifier, evidence: `its oldest segment, ${object.key}` };
      log.info(`cannot tell which cluster wrote ${object.key}: ${reading.unreadable}`);
      return undefined;
    }
    return undefined;
  }
}

/** What walship/archive.json records; undefined when there is none; a damaged one is refused with the way to repair it. */
export async function readArchiveRecord(storage: Storage): Promise<ArchiveRecord | undefined> {
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
  const walSegmentSize = typeof document.WalSegmentSize === 'number' && isValidSegmentSize(document.WalSegmentSize) ? document.WalSegmentSize : undefined;
  return { systemIdentifier: document.SystemIdentifier, walSegmentSize };
}
