/**
 * The stored description of each base backup (keys in layout.ts):
 *   basebackups_005/<name>/tar_partitions/part_001.tar.zst ...
 *   basebackups_005/<name>/tar_partitions/pg_control.tar.zst   (walship's and WAL-G's: uploaded last)
 *   basebackups_005/<name>/metadata.json
 *   basebackups_005/<name>_backup_stop_sentinel.json           (written last)
 * A backup without its sentinel is incomplete: it is never listed or restored.
 *
 * Both documents are written in WAL-G's format, with WAL-G's field names and
 * types (LSNs and the system identifier as JSON numbers, times in RFC 3339),
 * so WAL-G lists and restores walship's backups; walship's own fields sit
 * beside them under names WAL-G does not read. Sentinels are read whichever
 * tool wrote them: WAL-G's, walship's, and earlier walship versions' (LSNs as
 * "0/2000028" strings). 64-bit numbers are read and written exactly, beyond
 * 2^53. This module is the one place that knows these formats.
 */
import { Readable } from 'node:stream';
import { IntegrityError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { formatLsn, parseLsn } from '../postgres/lsn.ts';
import { parseWalFileName } from '../postgres/wal-name.ts';
import { type RecordedEncryption, UNRECORDED } from '../stages/object-metadata.ts';
import type { Storage } from '../storage/storage.ts';
import { backupPrefix, filesMetadataKey, isBackupName, metadataKey, partsPrefix, sentinelKey } from './layout.ts';

export interface BackupPart {
  /** The object name under tar_partitions/, e.g. part_001.tar.zst. */
  Name: string;
  UncompressedSize: number;
  CompressedSize: number;
  /** SHA-256 of the stored object (the compressed, and maybe encrypted, tar part). */
  SHA256: string;
}

/** walship's sentinels list their parts with checksums; WAL-G's parts are found by listing tar_partitions/. */
export type BackupWriter = 'walship' | 'WAL-G';

/** A backup as walship works with it, decoded from its sentinel (and metadata.json), whichever tool wrote them. */
export interface BackupSentinel {
  BackupName: string;
  /** Start and finish (consistency) LSNs, as PostgreSQL writes them ("0/2000028"). */
  LSN: string;
  FinishLSN: string;
  Timeline: number;
  /** ISO 8601 in UTC. */
  StartTime: string;
  FinishTime: string;
  Hostname: string;
  DataDir: string;
  /** server_version_num, such as 150004. */
  PgVersion: number;
  /** A 64-bit number, as decimal digits; '' when the sentinel names none. */
  SystemIdentifier: string;
  /** The server's wal_segment_size in bytes; absent in sentinels written before walship kept it, and in WAL-G's. */
  WalSegmentSize?: number;
  UncompressedSize: number;
  CompressedSize: number;
  /** walship's compression method; '' for WAL-G's backups (each part's extension says). */
  Compression: string;
  /** 'libsodium' when the parts are encrypted (WAL-G's format); absent when they are not. */
  Encryption?: string;
  /** Which key encrypted them (stages/encrypt/encryption.ts), never the key. */
  EncryptionKeyId?: string;
  Label: string;
  IsPermanent: boolean;
  UserData: unknown;
  /** walship's parts with their checksums; empty for WAL-G's backups. */
  Parts: BackupPart[];
  WalshipVersion: string;
  /** Who wrote the backup; absent means walship (the decoder always sets it). */
  Writer?: BackupWriter;
  /** WAL-G's delta backups: the backup this one is a delta of (walship restores full backups only). */
  DeltaFrom?: string;
  /**
   * WAL-G's files_metadata.json, which may list the files to restore:
   * 'required' from sentinel Version 2 on, 'optional' before, 'none' when
   * FilesMetadataDisabled is set, and for walship's backups (absent means 'none').
   */
  FilesMetadata?: 'required' | 'optional' | 'none';
}

/** The two stored documents of a backup, parsed; metadata.json may be missing. */
export interface BackupDocuments {
  sentinel: unknown;
  metadata?: unknown;
}

const BACKUP_NAME_PREFIX = 'base_';
/** Sentinels and metadata are small; anything larger is not ours. */
const MAX_DOCUMENT_BYTES = 64 << 20;
/** WAL-G's files_metadata.json grows with the number of files (about 150 bytes each): this allows some 1.5 million. */
const MAX_FILES_METADATA_BYTES = 256 << 20;
/** Files WAL-G restores whatever files_metadata.json lists (its UtilityFilePaths), relative to the data directory. */
const ALWAYS_RESTORED = ['global/pg_control', 'backup_label', 'tablespace_map'];

export function backupNameForSegment(startSegment: string): string {
  return `${BACKUP_NAME_PREFIX}${startSegment}`;
}

/** The WAL segment a backup started in, from its name. */
export function startSegmentOfBackup(name: string): string {
  return name.slice(BACKUP_NAME_PREFIX.length);
}

/** WAL-G names a delta backup after its own start segment and its base's. */
const WALG_DELTA_NAME = /^base_[0-9A-F]{24}_D_[0-9A-F]{24}$/;

export function requireBackupName(name: string): string {
  if (WALG_DELTA_NAME.test(name)) {
    throw new WalshipError(`${name} is a WAL-G delta backup: walship restores full backups only; restore it with WAL-G, or choose a full backup (backup-list shows them)`);
  }
  if (!isBackupName(name)) {
    throw new WalshipError(`"${name}" is not a backup name: expected base_ and a 24-hex-digit WAL segment, as backup-list shows`);
  }
  return name;
}

/** WAL-G's date format note in both documents (Python's strftime style, as WAL-G writes it). */
const WALG_DATE_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ';
/** WAL-G's sentinel version that carries times, host and data directory. */
const WALG_SENTINEL_VERSION = 2;

type Document = Record<string, unknown>;

/** JSON.rawJSON and JSON.isRawJSON (Node 21 and later; not yet in TypeScript's lib). */
const RawJson = JSON as unknown as { rawJSON(text: string): unknown; isRawJSON(value: unknown): value is { rawJSON: string } };

/** Parses JSON keeping integers beyond 2^53 exactly (as raw JSON that stringifies back to the same digits). */
export function parseExactJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source) ? RawJson.rawJSON(context.source) : value,
  );
}

/** A 64-bit unsigned number as JSON writes it: bare digits, exact at any size. */
function uint64(value: bigint): unknown {
  return RawJson.rawJSON(value.toString());
}

/** An LSN or other 64-bit number as stored: a JSON number (WAL-G's), or an "X/Y" LSN string (earlier walship versions). */
function readUint64(value: unknown): bigint | undefined {
  if (RawJson.isRawJSON(value)) return BigInt(value.rawJSON);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'string' && value.includes('/')) {
    try {
      return parseLsn(value);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function asDocument(value: unknown): Document | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Document) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** A time in UTC ISO form, from RFC 3339 (with any offset and up to nanoseconds); undefined when it is none. */
function isoTime(value: unknown): string | undefined {
  const parsed = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(parsed) ? undefined : new Date(parsed).toISOString();
}

function isValidPart(part: unknown): part is BackupPart {
  const described = asDocument(part);
  return typeof described?.Name === 'string' && typeof described.SHA256 === 'string' && typeof described.UncompressedSize === 'number';
}

/**
 * The backup `name` from its documents, whichever tool wrote them: walship's
 * (a list of parts with checksums) or WAL-G's. metadata.json holds the
 * permanent mark WAL-G's backup-mark sets. Anything else (damaged, no LSNs
 * or finish time) is refused with one line naming `key`.
 */
export function decodeSentinel(name: string, documents: BackupDocuments, key: string): BackupSentinel {
  const sentinel = asDocument(documents.sentinel);
  const metadata = asDocument(documents.metadata) ?? {};
  const refuse = (why: string) => new WalshipError(`${key} is not a backup sentinel walship can read: ${why}`);
  if (!sentinel) throw refuse('it is not a JSON object');
  const startLsn = readUint64(sentinel.LSN);
  const finishLsn = readUint64(sentinel.FinishLSN);
  if (startLsn === undefined || finishLsn === undefined) throw refuse('it has no valid LSN and FinishLSN');
  const finishTime = isoTime(sentinel.FinishTime) ?? isoTime(metadata.finish_time);
  if (!finishTime) throw refuse('it has no finish time, nor has its metadata.json');
  const parts = sentinel.Parts;
  const writer: BackupWriter = Array.isArray(parts) ? 'walship' : 'WAL-G';
  if (Array.isArray(parts) && !parts.every(isValidPart)) throw refuse('its list of parts is damaged');
  const systemIdentifier = readUint64(sentinel.SystemIdentifier) ?? readUint64(metadata.system_identifier);
  const permanent = metadata.is_permanent ?? metadata.IsPermanent ?? sentinel.IsPermanent;
  const version = count(sentinel.Version);
  return {
    BackupName: name,
    LSN: formatLsn(startLsn),
    FinishLSN: formatLsn(finishLsn),
    Timeline: typeof sentinel.Timeline === 'number' ? sentinel.Timeline : (parseWalFileName(startSegmentOfBackup(name))?.timeline ?? 1),
    StartTime: isoTime(sentinel.StartTime) ?? isoTime(metadata.start_time) ?? finishTime,
    FinishTime: finishTime,
    Hostname: text(sentinel.Hostname) ?? text(metadata.hostname) ?? '',
    DataDir: text(sentinel.DataDir) ?? text(metadata.data_dir) ?? '',
    PgVersion: count(sentinel.PgVersion) || count(metadata.pg_version),
    SystemIdentifier: systemIdentifier === undefined ? '' : systemIdentifier.toString(),
    ...(typeof sentinel.WalSegmentSize === 'number' ? { WalSegmentSize: sentinel.WalSegmentSize } : {}),
    UncompressedSize: count(sentinel.UncompressedSize),
    CompressedSize: count(sentinel.CompressedSize),
    Compression: text(sentinel.Compression) ?? '',
    ...(typeof sentinel.Encryption === 'string' ? { Encryption: sentinel.Encryption } : {}),
    ...(typeof sentinel.EncryptionKeyId === 'string' ? { EncryptionKeyId: sentinel.EncryptionKeyId } : {}),
    Label: text(sentinel.Label) ?? '',
    IsPermanent: permanent === true,
    UserData: sentinel.UserData ?? metadata.user_data ?? null,
    Parts: writer === 'walship' ? (parts as BackupPart[]) : [],
    WalshipVersion: text(sentinel.WalshipVersion) ?? '',
    Writer: writer,
    ...(typeof sentinel.DeltaFrom === 'string' ? { DeltaFrom: sentinel.DeltaFrom } : {}),
    FilesMetadata: writer === 'walship' || sentinel.FilesMetadataDisabled === true ? 'none' : version >= WALG_SENTINEL_VERSION ? 'required' : 'optional',
  };
}

/** The sentinel walship writes: WAL-G's fields with WAL-G's names and types, then walship's own. */
function encodeSentinel(backup: BackupSentinel): Document {
  return {
    LSN: uint64(parseLsn(backup.LSN)),
    FinishLSN: uint64(parseLsn(backup.FinishLSN)),
    PgVersion: backup.PgVersion,
    SystemIdentifier: uint64(BigInt(backup.SystemIdentifier)),
    UncompressedSize: backup.UncompressedSize,
    CompressedSize: backup.CompressedSize,
    UserData: backup.UserData,
    // No files_metadata.json: WAL-G then restores every file of every part.
    FilesMetadataDisabled: true,
    Version: WALG_SENTINEL_VERSION,
    StartTime: backup.StartTime,
    FinishTime: backup.FinishTime,
    DateFmt: WALG_DATE_FORMAT,
    Hostname: backup.Hostname,
    DataDir: backup.DataDir,
    IsPermanent: backup.IsPermanent,
    // walship's own: WAL-G reads none of these names.
    BackupName: backup.BackupName,
    Timeline: backup.Timeline,
    WalSegmentSize: backup.WalSegmentSize,
    Compression: backup.Compression,
    Encryption: backup.Encryption,
    EncryptionKeyId: backup.EncryptionKeyId,
    Label: backup.Label,
    Parts: backup.Parts,
    WalshipVersion: backup.WalshipVersion,
  };
}

/** metadata.json as WAL-G writes it (its backup-list --detail, backup-mark and delete read it). */
function encodeMetadata(backup: BackupSentinel): Document {
  return {
    start_time: backup.StartTime,
    finish_time: backup.FinishTime,
    date_fmt: WALG_DATE_FORMAT,
    hostname: backup.Hostname,
    data_dir: backup.DataDir,
    pg_version: backup.PgVersion,
    start_lsn: uint64(parseLsn(backup.LSN)),
    finish_lsn: uint64(parseLsn(backup.FinishLSN)),
    is_permanent: backup.IsPermanent,
    system_identifier: uint64(BigInt(backup.SystemIdentifier)),
    uncompressed_size: backup.UncompressedSize,
    compressed_size: backup.CompressedSize,
    user_data: backup.UserData,
  };
}

function jsonObject(document: Document): Readable {
  return Readable.from([Buffer.from(`${JSON.stringify(document, null, 2)}\n`)]);
}

/** The sentinel's record of how the parts are stored encrypted. */
export function encryptionFields(encryption: RecordedEncryption): Pick<BackupSentinel, 'Encryption' | 'EncryptionKeyId'> {
  return encryption.method === 'none' || encryption.method === undefined ? {} : { Encryption: encryption.method, EncryptionKeyId: encryption.keyId };
}

/** How the backup's parts are encrypted: a walship sentinel without a record says unencrypted; WAL-G's says nothing. */
export function partEncryption(sentinel: BackupSentinel): RecordedEncryption {
  if (sentinel.Encryption !== undefined) return { method: sentinel.Encryption, keyId: sentinel.EncryptionKeyId };
  return (sentinel.Writer ?? 'walship') === 'walship' ? { method: 'none' } : UNRECORDED;
}

export async function readSentinel(storage: Storage, name: string): Promise<BackupSentinel> {
  const key = sentinelKey(name);
  try {
    const [sentinel, metadata] = await Promise.all([readSentinelDocument(storage, name), readMetadataDocument(storage, name)]);
    return decodeSentinel(name, { sentinel, metadata }, key);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(`backup ${name} is not in ${storage.location} (or is incomplete): backup-list shows the complete backups`);
    }
    throw error;
  }
}

/** A JSON document, parsed exactly; NotFoundError when it is not stored. */
async function readDocument(storage: Storage, key: string, what: string, limit = MAX_DOCUMENT_BYTES): Promise<unknown> {
  const stored = await storage.get(key);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stored.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stored.body.destroy();
      throw new WalshipError(`${key} is too large to be ${what}`);
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return parseExactJson(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WalshipError(`${key} is not valid JSON: ${what} is damaged`);
  }
}

/** A backup's sentinel document, whichever tool wrote it, with its 64-bit numbers exact. */
export function readSentinelDocument(storage: Storage, name: string): Promise<unknown> {
  return readDocument(storage, sentinelKey(name), 'a backup sentinel');
}

/** A backup's metadata.json; undefined when there is none, or it cannot be read (the sentinel then says it all, with a warning). */
export async function readMetadataDocument(storage: Storage, name: string): Promise<unknown> {
  try {
    return await readDocument(storage, metadataKey(name), "a backup's metadata");
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    if (!(error instanceof WalshipError)) throw error;
    log.warning(`ignoring the metadata of backup ${name}: ${error.message}`);
    return undefined;
  }
}

/** The system identifier a sentinel document names, as decimal digits; undefined when it names none. */
export function systemIdentifierOf(document: unknown): string | undefined {
  return readUint64(asDocument(document)?.SystemIdentifier)?.toString();
}

/**
 * Writes metadata.json, then the sentinel: the sentinel is the commit point.
 * `createOnly` refuses to replace an existing sentinel (a new backup).
 */
export async function writeBackupDocuments(storage: Storage, sentinel: BackupSentinel, options: { createOnly: boolean }): Promise<void> {
  await storage.put(metadataKey(sentinel.BackupName), jsonObject(encodeMetadata(sentinel)));
  await storage.put(sentinelKey(sentinel.BackupName), jsonObject(encodeSentinel(sentinel)), { createOnly: options.createOnly });
}

/** The names of a backup's stored parts (under tar_partitions/), as a listing finds them: WAL-G's sentinels do not list them. */
export async function listStoredParts(storage: Storage, name: string): Promise<string[]> {
  const prefix = partsPrefix(name);
  const parts: string[] = [];
  for await (const object of storage.list(prefix)) {
    const part = object.key.slice(prefix.length);
    if (part && !part.includes('/')) parts.push(part);
  }
  return parts.sort();
}

/**
 * The files to restore from a WAL-G backup, as its files_metadata.json lists
 * them (relative to the data directory), with the ones WAL-G always restores;
 * undefined to restore every file (no list, or the backup has none, as WAL-G
 * does). A list its sentinel requires (Version 2) but storage lacks is damage.
 */
export async function readFilesToRestore(storage: Storage, backup: BackupSentinel): Promise<Set<string> | undefined> {
  if ((backup.FilesMetadata ?? 'none') === 'none') return undefined;
  const key = filesMetadataKey(backup.BackupName);
  let document: unknown;
  try {
    document = await readDocument(storage, key, "a backup's files metadata", MAX_FILES_METADATA_BYTES);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    if (backup.FilesMetadata === 'required') throw new IntegrityError(`${key} is missing: its sentinel (Version 2, files metadata enabled) says WAL-G wrote it, so backup ${backup.BackupName} is damaged`);
    return undefined;
  }
  const files = asDocument(asDocument(document)?.Files);
  if (!files || Object.keys(files).length === 0) return undefined;
  return new Set([...Object.keys(files).map((path) => path.replace(/^\/+/, '')), ...ALWAYS_RESTORED]);
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

/**
 * backup-mark: sets or clears the permanent flag. walship's backups get both
 * documents rewritten; WAL-G's get only metadata.json's is_permanent changed,
 * every other field kept exactly, as WAL-G's own backup-mark does.
 */
export async function markBackup(storage: Storage, name: string, permanent: boolean): Promise<BackupSentinel> {
  const sentinel = await readSentinel(storage, requireBackupName(name));
  if (sentinel.IsPermanent === permanent) return sentinel;
  const updated = { ...sentinel, IsPermanent: permanent };
  if (sentinel.Writer === 'walship') {
    await writeBackupDocuments(storage, updated, { createOnly: false });
    return updated;
  }
  const metadata = asDocument(await readMetadataDocument(storage, name));
  if (!metadata) throw new WalshipError(`backup ${name} has no readable ${metadataKey(name)}, where WAL-G keeps the permanent mark: it cannot be marked`);
  await storage.put(metadataKey(name), jsonObject({ ...metadata, is_permanent: permanent }));
  return updated;
}
