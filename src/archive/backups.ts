/**
 * The stored description of each base backup (keys in layout.ts):
 *   basebackups_005/<name>/tar_partitions/part_001.tar.zst ...
 *   basebackups_005/<name>/metadata.json
 *   basebackups_005/<name>_backup_stop_sentinel.json   (written last)
 * A backup without its sentinel is incomplete: it is never listed or restored.
 * The sentinel and metadata.json hold the same document. Its format is read
 * and written here only.
 */
import { Readable } from 'node:stream';
import { NotFoundError, WalshipError } from '../errors.ts';
import { type RecordedEncryption, UNRECORDED } from '../stages/object-metadata.ts';
import type { Storage } from '../storage/storage.ts';
import { backupPrefix, isBackupName, metadataKey, sentinelKey } from './layout.ts';

export interface BackupPart {
  /** The object name under tar_partitions/, e.g. part_001.tar.zst. */
  Name: string;
  UncompressedSize: number;
  CompressedSize: number;
  /** SHA-256 of the stored object (the compressed, and maybe encrypted, tar part). */
  SHA256: string;
}

export interface BackupSentinel {
  BackupName: string;
  /** Start and finish (consistency) LSNs, as PostgreSQL writes them ("0/2000028"). */
  LSN: string;
  FinishLSN: string;
  Timeline: number;
  StartTime: string;
  FinishTime: string;
  Hostname: string;
  DataDir: string;
  PgVersion: number;
  /** A 64-bit number, as a decimal string. */
  SystemIdentifier: string;
  /** The server's wal_segment_size in bytes; absent in sentinels written before walship kept it. */
  WalSegmentSize?: number;
  UncompressedSize: number;
  CompressedSize: number;
  Compression: string;
  /** 'libsodium' when the parts are encrypted (WAL-G's format); absent when they are not. */
  Encryption?: string;
  /** Which key encrypted them (stages/encrypt/encryption.ts), never the key. */
  EncryptionKeyId?: string;
  Label: string;
  IsPermanent: boolean;
  UserData: unknown;
  Parts: BackupPart[];
  WalshipVersion: string;
}

const BACKUP_NAME_PREFIX = 'base_';
/** Sentinels and metadata are small; anything larger is not ours. */
const MAX_DOCUMENT_BYTES = 64 << 20;

export function backupNameForSegment(startSegment: string): string {
  return `${BACKUP_NAME_PREFIX}${startSegment}`;
}

/** The WAL segment a backup started in, from its name. */
export function startSegmentOfBackup(name: string): string {
  return name.slice(BACKUP_NAME_PREFIX.length);
}

export function requireBackupName(name: string): string {
  if (!isBackupName(name)) {
    throw new WalshipError(`"${name}" is not a backup name: expected base_ and a 24-hex-digit WAL segment, as backup-list shows`);
  }
  return name;
}

/** The sentinel's record of how the parts are stored encrypted. */
export function encryptionFields(encryption: RecordedEncryption): Pick<BackupSentinel, 'Encryption' | 'EncryptionKeyId'> {
  return encryption.method === 'none' || encryption.method === undefined ? {} : { Encryption: encryption.method, EncryptionKeyId: encryption.keyId };
}

/** How the backup's parts are encrypted: a walship sentinel without a record says unencrypted; another tool's says nothing. */
export function partEncryption(sentinel: BackupSentinel): RecordedEncryption {
  if (sentinel.Encryption !== undefined) return { method: sentinel.Encryption, keyId: sentinel.EncryptionKeyId };
  return sentinel.WalshipVersion !== undefined ? { method: 'none' } : UNRECORDED;
}

/** A sentinel document as walship wrote it; anything else (another tool's, damaged) is refused. */
export function validSentinel(document: unknown, key: string): BackupSentinel {
  const sentinel = document as BackupSentinel;
  const valid =
    typeof sentinel === 'object' && sentinel !== null &&
    typeof sentinel.BackupName === 'string' && typeof sentinel.LSN === 'string' && typeof sentinel.FinishLSN === 'string' &&
    typeof sentinel.FinishTime === 'string' && Array.isArray(sentinel.Parts) &&
    sentinel.Parts.every((part) => typeof part?.Name === 'string' && typeof part.SHA256 === 'string' && typeof part.UncompressedSize === 'number');
  if (!valid) throw new WalshipError(`${key} is not a walship backup sentinel (written by another tool or damaged)`);
  return sentinel;
}

export async function readSentinel(storage: Storage, name: string): Promise<BackupSentinel> {
  const key = sentinelKey(name);
  try {
    return validSentinel(await readSentinelDocument(storage, name), key);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(`backup ${name} is not in ${storage.location} (or is incomplete): backup-list shows the complete backups`);
    }
    throw error;
  }
}

/**
 * A backup's sentinel document, whichever tool wrote it. A SystemIdentifier
 * stored as a JSON number (WAL-G's, usually above 2^53) is kept exactly, as
 * its decimal digits.
 */
export async function readSentinelDocument(storage: Storage, name: string): Promise<unknown> {
  const key = sentinelKey(name);
  const stored = await storage.get(key);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stored.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_DOCUMENT_BYTES) throw new WalshipError(`${key} is too large to be a backup sentinel`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'), (field, value, context?: { source?: string }) =>
      field === 'SystemIdentifier' && typeof value === 'number' && context?.source ? context.source : value,
    );
  } catch {
    throw new WalshipError(`${key} is not valid JSON: the sentinel is damaged`);
  }
}

/** The system identifier a sentinel document names, as decimal digits; undefined when it names none. */
export function systemIdentifierOf(document: unknown): string | undefined {
  const { SystemIdentifier: systemIdentifier } = (document ?? {}) as { SystemIdentifier?: unknown };
  return typeof systemIdentifier === 'string' && /^\d+$/.test(systemIdentifier) ? systemIdentifier : undefined;
}

/**
 * Writes metadata.json, then the sentinel: the sentinel is the commit point.
 * `createOnly` refuses to replace an existing sentinel (a new backup).
 */
export async function writeBackupDocuments(storage: Storage, sentinel: BackupSentinel, options: { createOnly: boolean }): Promise<void> {
  const document = Buffer.from(`${JSON.stringify(sentinel, null, 2)}\n`);
  await storage.put(metadataKey(sentinel.BackupName), Readable.from([document]));
  await storage.put(sentinelKey(sentinel.BackupName), Readable.from([document]), { createOnly: options.createOnly });
}

/** Removes the objects of a backup but its sentinel (a failed push's, or a deleted backup's); returns how many and their bytes. */
export async function deleteBackupObjects(storage: Storage, name: string): Promise<{ objects: number; bytes: number }> {
  const keys: string[] = [];
  let bytes = 0;
  for await (const object of storage.list(backupPrefix(name))) {
    keys.push(object.key);
    bytes += object.size;
  }
  await storage.deleteMany(keys);
  return { objects: keys.length, bytes };
}

/** backup-mark: sets or clears the permanent flag, rewriting metadata.json and then the sentinel. */
export async function markBackup(storage: Storage, name: string, permanent: boolean): Promise<BackupSentinel> {
  const sentinel = await readSentinel(storage, requireBackupName(name));
  if (sentinel.IsPermanent === permanent) return sentinel;
  const updated = { ...sentinel, IsPermanent: permanent };
  await writeBackupDocuments(storage, updated, { createOnly: false });
  return updated;
}
