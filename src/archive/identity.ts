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
import { type Codec, codecsPreferring, UNREADABLE_EXTENSIONS } from '../compress/codec.ts';
import { AlreadyExistsError, describeError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { chain } from '../pipeline/chain.ts';
import { parseWalLongPageHeader, WAL_LONG_HEADER_SIZE } from '../postgres/wal-header.ts';
import { parseWalFileName } from '../postgres/wal-name.ts';
import { ARCHIVE_IDENTITY_KEY, WAL_FOLDER } from '../storage/layout.ts';
import type { Storage } from '../storage/storage.ts';
import { VERSION } from '../version.ts';

/** walship/archive.json. */
interface IdentityDocument {
  SystemIdentifier: string;
  CreatedAt: string;
  WalshipVersion: string;
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
   * archive belongs to the cluster `systemIdentifier`; an archive that belongs
   * to no cluster yet becomes its. `source` says where that identifier came
   * from ("pg_wal/... was written by", "the server is"). Once verified, the
   * answer comes from memory or the cache: no storage request per file.
   */
  async requireCluster(systemIdentifier: string, source: string): Promise<void> {
    if (this.verified === systemIdentifier) return;
    const cached = await this.cache?.verifiedSystemIdentifier();
    if (cached !== systemIdentifier) {
      // Only storage may refuse: a stale cache must never stop archiving.
      this.owner ??= this.findOrRecordOwner(systemIdentifier).catch((error: unknown) => {
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

  private async findOrRecordOwner(candidate: string): Promise<Owner> {
    const recorded = await this.recordedOwner();
    if (recorded) return recorded;
    const other = await this.otherOwnerInContent(candidate);
    if (other) return other;
    const document: IdentityDocument = { SystemIdentifier: candidate, CreatedAt: new Date().toISOString(), WalshipVersion: VERSION };
    try {
      await this.storage.put(ARCHIVE_IDENTITY_KEY, Readable.from([Buffer.from(`${JSON.stringify(document, null, 2)}\n`)]), { createOnly: true });
      log.info('recorded the cluster this archive belongs to', { key: ARCHIVE_IDENTITY_KEY, systemIdentifier: candidate });
      return { systemIdentifier: candidate, evidence: ARCHIVE_IDENTITY_KEY };
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      // Another cluster, or another push of this one, recorded it first.
      const winner = await this.recordedOwner();
      if (!winner) throw new WalshipError(`${ARCHIVE_IDENTITY_KEY} in ${this.storage.location} was created and then removed while walship recorded it`);
      return winner;
    }
  }

  private async recordedOwner(): Promise<Owner | undefined> {
    let text: string;
    try {
      const stored = await this.storage.get(ARCHIVE_IDENTITY_KEY);
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
        `${ARCHIVE_IDENTITY_KEY} in ${this.storage.location} is damaged (no SystemIdentifier): restore it with the system identifier of the cluster that archives here (SELECT system_identifier FROM pg_control_system())`,
      );
    }
    return { systemIdentifier: document.SystemIdentifier, evidence: ARCHIVE_IDENTITY_KEY };
  }

  /**
   * For an archive with no record of its owner: a backup of another cluster,
   * or, without backups, an oldest stored segment of another cluster.
   */
  private async otherOwnerInContent(candidate: string): Promise<Owner | undefined> {
    const { listBackupOrigins } = await import('../backup/catalog.ts'); // once per archive, never on the steady path
    const origins = await listBackupOrigins(this.storage);
    if (origins.length > 0) {
      const other = origins.find((origin) => origin.systemIdentifier !== candidate);
      return other && { systemIdentifier: other.systemIdentifier, evidence: `backup ${other.backup}` };
    }
    const oldest = await this.oldestSegmentOwner();
    return oldest && oldest.systemIdentifier !== candidate ? oldest : undefined;
  }

  /** The cluster that wrote the first segment stored, when walship can read it. */
  private async oldestSegmentOwner(): Promise<Owner | undefined> {
    for await (const object of this.storage.list(`${WAL_FOLDER}/`)) {
      const file = object.key.slice(WAL_FOLDER.length + 1);
      // The uncompressed codec (no extension) comes last.
      const codec = codecsPreferring('zstd').find((candidate) => candidate.extension === '' || file.endsWith(`.${candidate.extension}`))!;
      const kind = parseWalFileName(codec.extension ? file.slice(0, -codec.extension.length - 1) : file)?.kind;
      if (kind === 'segment' || kind === 'partial') return this.segmentOwner(object.key, codec);
      if (UNREADABLE_EXTENSIONS.some((extension) => file.endsWith(`.${extension}`))) return undefined;
    }
    return undefined;
  }

  /** Who wrote a stored segment, from its header; undefined when its content cannot tell (damaged, not WAL). */
  private async segmentOwner(key: string, codec: Codec): Promise<Owner | undefined> {
    const stored = await this.storage.get(key);
    // A storage failure leaves the question open; only the content itself may be unreadable.
    let storageError: unknown;
    const body = async function* () {
      try {
        yield* stored.body;
      } catch (error) {
        storageError = error;
        throw error;
      }
    };
    let start = Buffer.alloc(0);
    try {
      for await (const chunk of chain(Readable.from(body(), { objectMode: false }), await codec.decompress())) {
        start = Buffer.concat([start, chunk as Buffer]);
        if (start.length >= WAL_LONG_HEADER_SIZE) break;
      }
      return { systemIdentifier: parseWalLongPageHeader(start, key).systemIdentifier, evidence: `its oldest segment, ${key}` };
    } catch (error) {
      if (storageError !== undefined) throw storageError;
      log.info(`cannot tell which cluster wrote ${key}: ${describeError(error)}`);
      return undefined;
    } finally {
      stored.body.destroy();
    }
  }
}
