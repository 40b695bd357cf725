/**
 * The stored description of each base backup, under WAL-G's layout:
 *   basebackups_005/<name>/tar_partitions/part_001.tar.zst ...
 *   basebackups_005/<name>/metadata.json
 *   basebackups_005/<name>_backup_stop_sentinel.json   (written last)
 * A backup without its sentinel is incomplete: it is never listed or restored.
 * The sentinel and metadata.json hold the same document.
 */
import { Readable } from 'node:stream';
import { NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { BACKUP_FOLDER } from '../storage/layout.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';

export interface BackupPart {
  /** The object name under tar_partitions/, e.g. part_001.tar.zst. */
  Name: string;
  UncompressedSize: number;
  CompressedSize: number;
  /** SHA-256 of the stored object (the compressed tar part). */
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
  UncompressedSize: number;
  CompressedSize: number;
  Compression: string;
  Label: string;
  IsPermanent: boolean;
  UserData: unknown;
  Parts: BackupPart[];
  WalshipVersion: string;
}

const SENTINEL_SUFFIX = '_backup_stop_sentinel.json';
const BACKUP_NAME = /^base_[0-9A-F]{24}$/;
/** Sentinels and metadata are small; anything larger is not ours. */
const MAX_DOCUMENT_BYTES = 64 << 20;

export function backupNameForSegment(startSegment: string): string {
  return `base_${startSegment}`;
}

export function sentinelKey(name: string): string {
  return `${BACKUP_FOLDER}/${name}${SENTINEL_SUFFIX}`;
}

export function metadataKey(name: string): string {
  return `${BACKUP_FOLDER}/${name}/metadata.json`;
}

export function backupPrefix(name: string): string {
  return `${BACKUP_FOLDER}/${name}/`;
}

export function partKey(name: string, partName: string): string {
  return `${BACKUP_FOLDER}/${name}/tar_partitions/${partName}`;
}

export function requireBackupName(name: string): string {
  if (!BACKUP_NAME.test(name)) {
    throw new WalshipError(`"${name}" is not a backup name: expected base_ and a 24-hex-digit WAL segment, as backup-list shows`);
  }
  return name;
}

function validSentinel(document: unknown, key: string): BackupSentinel {
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
    return validSentinel(await readDocument(storage, key), key);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(`backup ${name} is not in ${storage.location} (or is incomplete): backup-list shows the complete backups`);
    }
    throw error;
  }
}

/**
 * A sentinel or metadata document. A SystemIdentifier stored as a JSON number
 * (WAL-G's, usually above 2^53) is kept exactly, as its decimal digits.
 */
async function readDocument(storage: Storage, key: string): Promise<unknown> {
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

/**
 * Writes metadata.json, then the sentinel: the sentinel is the commit point.
 * `createOnly` refuses to replace an existing sentinel (a new backup).
 */
export async function writeBackupDocuments(storage: Storage, sentinel: BackupSentinel, options: { createOnly: boolean }): Promise<void> {
  const document = Buffer.from(`${JSON.stringify(sentinel, null, 2)}\n`);
  await storage.put(metadataKey(sentinel.BackupName), Readable.from([document]));
  await storage.put(sentinelKey(sentinel.BackupName), Readable.from([document]), { createOnly: options.createOnly });
}

/** The names of every complete backup (those with a sentinel). */
export async function listBackupNames(storage: Storage): Promise<string[]> {
  const names: string[] = [];
  for await (const object of storage.list(`${BACKUP_FOLDER}/base_`)) {
    const relative = object.key.slice(BACKUP_FOLDER.length + 1);
    if (!relative.includes('/') && relative.endsWith(SENTINEL_SUFFIX)) {
      const name = relative.slice(0, -SENTINEL_SUFFIX.length);
      if (BACKUP_NAME.test(name)) names.push(name);
    }
  }
  return names;
}

const READ_CONCURRENCY = 8;

/**
 * Every complete backup, oldest first (newest last, like WAL-G). Sentinels
 * walship cannot read (another tool's, or damaged) are skipped with a warning,
 * so they never hide the others.
 */
export async function listBackups(storage: Storage): Promise<BackupSentinel[]> {
  const sentinels: BackupSentinel[] = [];
  await forEachConcurrently(await listBackupNames(storage), READ_CONCURRENCY, async (name) => {
    try {
      sentinels.push(await readSentinel(storage, name));
    } catch (error) {
      if (error instanceof NotFoundError) return; // deleted since it was listed
      if (!(error instanceof WalshipError)) throw error;
      log.warning(`skipping backup ${name}: ${error.message}`);
    }
  });
  return sentinels.sort((a, b) => a.FinishTime.localeCompare(b.FinishTime) || a.BackupName.localeCompare(b.BackupName));
}

/** Which cluster a complete backup came from, as its sentinel says. */
export interface BackupOrigin {
  backup: string;
  systemIdentifier: string;
}

/**
 * The system identifier of every complete backup, walship's or another
 * tool's (WAL-G writes it as a JSON number). Sentinels without one, or that
 * cannot be read, are left out.
 */
export async function listBackupOrigins(storage: Storage): Promise<BackupOrigin[]> {
  const origins: BackupOrigin[] = [];
  await forEachConcurrently(await listBackupNames(storage), READ_CONCURRENCY, async (backup) => {
    try {
      const { SystemIdentifier: systemIdentifier } = ((await readDocument(storage, sentinelKey(backup))) ?? {}) as { SystemIdentifier?: unknown };
      if (typeof systemIdentifier === 'string' && /^\d+$/.test(systemIdentifier)) origins.push({ backup, systemIdentifier });
    } catch (error) {
      if (!(error instanceof WalshipError)) throw error;
      log.info(`backup ${backup} does not say which cluster it came from: ${error.message}`);
    }
  });
  return origins.sort((a, b) => a.backup.localeCompare(b.backup));
}

/** The objects a backup left behind, sentinel excluded (to clean up a failed push). */
export async function deleteBackupObjects(storage: Storage, name: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of storage.list(backupPrefix(name))) keys.push(object.key);
  for (const key of keys) await storage.delete(key);
}

/** backup-mark: sets or clears the permanent flag, rewriting metadata.json and then the sentinel. */
export async function markBackup(storage: Storage, name: string, permanent: boolean): Promise<BackupSentinel> {
  const sentinel = await readSentinel(storage, requireBackupName(name));
  if (sentinel.IsPermanent === permanent) return sentinel;
  const updated = { ...sentinel, IsPermanent: permanent };
  await writeBackupDocuments(storage, updated, { createOnly: false });
  return updated;
}
