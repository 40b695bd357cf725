/**
 * The stored description of each logical dump set (keys in layout.ts):
 *   dumps_005/<name>/globals.sql.zst                  pg_dumpall --globals-only
 *   dumps_005/<name>/databases/<database>.dump.zst    pg_dump -Fc, one per database
 *   dumps_005/<name>_dump_sentinel.json               written last
 * A dump set without its sentinel does not exist: it is never listed or
 * restored. Its format is read and written here only.
 */
import { Readable } from 'node:stream';
import { ConfigError, NotFoundError, WalshipError } from '../errors.ts';
import type { RecordedEncryption } from '../stages/object-metadata.ts';
import type { Storage } from '../storage/storage.ts';
import { dumpPrefix, dumpSentinelKey, isDumpName } from './layout.ts';

/** One stored object of a dump set. */
export interface DumpedObject {
  /** The object's path under the dump set's folder, e.g. databases/shop.dump.zst. */
  Object: string;
  /** Bytes of the content: the pg_dump -Fc file, or the globals SQL. */
  UncompressedSize: number;
  CompressedSize: number;
  /** SHA-256 of the stored object, checked before anything is decompressed. */
  SHA256: string;
  /** SHA-256 of the content: what `sha256sum` says of the file dump-fetch writes. */
  ContentSHA256: string;
}

export interface DumpedDatabase extends DumpedObject {
  Database: string;
  /** When pg_dump's snapshot was taken (the data is as of this time), ISO 8601 UTC. */
  SnapshotTime: string;
  /** The server's server_version_num and pg_dump's own version line. */
  PgVersion: number;
  PgDumpVersion: string;
  /** A 64-bit number, as a decimal string. */
  SystemIdentifier: string;
}

export interface DumpedGlobals extends DumpedObject {
  /** False when the dumping role could not read passwords (not a superuser): roles come back without them. */
  RolePasswords: boolean;
}

export interface DumpSentinel {
  DumpName: string;
  StartTime: string;
  FinishTime: string;
  Hostname: string;
  PgVersion: number;
  PgDumpVersion: string;
  SystemIdentifier: string;
  UncompressedSize: number;
  CompressedSize: number;
  Compression: string;
  IsPermanent: boolean;
  UserData: unknown;
  Globals: DumpedGlobals;
  Databases: DumpedDatabase[];
  /** How the objects are stored encrypted (as a backup's sentinel says it); absent: unencrypted. */
  Encryption?: string;
  EncryptionKeyId?: string;
  WalshipVersion: string;
}

/** Sentinels are small; anything larger is not ours. */
const MAX_SENTINEL_BYTES = 16 << 20;

export function requireDumpName(name: string): string {
  if (!isDumpName(name)) throw new ConfigError(`"${name}" is not a dump name: expected dump_ and a UTC time such as dump_20240501T021500Z, as dump-list shows`);
  return name;
}

const isObject = (value: unknown): value is DumpedObject => {
  const object = value as DumpedObject;
  return typeof object === 'object' && object !== null && typeof object.Object === 'string' && typeof object.SHA256 === 'string' &&
    typeof object.ContentSHA256 === 'string' && typeof object.UncompressedSize === 'number' && typeof object.CompressedSize === 'number';
};

/** A sentinel document as walship wrote it; anything else (damaged) is refused. */
export function validDumpSentinel(document: unknown, key: string): DumpSentinel {
  const sentinel = document as DumpSentinel;
  const valid =
    typeof sentinel === 'object' && sentinel !== null && typeof sentinel.DumpName === 'string' && typeof sentinel.FinishTime === 'string' &&
    isObject(sentinel.Globals) && Array.isArray(sentinel.Databases) &&
    sentinel.Databases.every((database) => isObject(database) && typeof database.Database === 'string');
  if (!valid) throw new WalshipError(`${key} is not a walship dump sentinel (damaged, or written by another tool)`);
  return sentinel;
}

/** A dump set's sentinel document, unchecked; NotFoundError when there is none. */
export async function readDumpSentinelDocument(storage: Storage, name: string): Promise<unknown> {
  const key = dumpSentinelKey(name);
  const stored = await storage.get(key);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stored.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_SENTINEL_BYTES) throw new WalshipError(`${key} is too large to be a dump sentinel`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WalshipError(`${key} is not valid JSON: the sentinel is damaged`);
  }
}

export async function readDumpSentinel(storage: Storage, name: string): Promise<DumpSentinel> {
  requireDumpName(name);
  try {
    return validDumpSentinel(await readDumpSentinelDocument(storage, name), dumpSentinelKey(name));
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(`dump set ${name} is not in ${storage.location} (or is incomplete): dump-list shows the complete dump sets`);
    }
    throw error;
  }
}

/** How a dump set's objects are encrypted. */
export function dumpEncryption(sentinel: DumpSentinel): RecordedEncryption {
  return sentinel.Encryption === undefined ? { method: 'none' } : { method: sentinel.Encryption, keyId: sentinel.EncryptionKeyId };
}

/** The record of `database` in a dump set; a ConfigError naming the databases it holds when it has none. */
export function dumpedDatabase(sentinel: DumpSentinel, database: string): DumpedDatabase {
  const found = sentinel.Databases.find((dumped) => dumped.Database === database);
  if (!found) {
    const held = sentinel.Databases.map((dumped) => dumped.Database).join(', ') || 'none';
    throw new ConfigError(`dump set ${sentinel.DumpName} holds no database "${database}" (it holds: ${held})`);
  }
  return found;
}

/** Writes the sentinel: the commit point. `createOnly` refuses to replace one (a new dump set). */
export async function writeDumpSentinel(storage: Storage, sentinel: DumpSentinel, options: { createOnly: boolean }): Promise<void> {
  const document = Buffer.from(`${JSON.stringify(sentinel, null, 2)}\n`);
  await storage.put(dumpSentinelKey(sentinel.DumpName), Readable.from([document]), { createOnly: options.createOnly });
}

/** Removes the objects of a dump set but its sentinel (a failed push's, or a deleted set's); returns how many and their bytes. */
export async function deleteDumpObjects(storage: Storage, name: string): Promise<{ objects: number; bytes: number }> {
  const keys: string[] = [];
  let bytes = 0;
  for await (const object of storage.list(dumpPrefix(name))) {
    keys.push(object.key);
    bytes += object.size;
  }
  await storage.deleteMany(keys);
  return { objects: keys.length, bytes };
}

/** dump-mark: sets or clears the permanent flag by rewriting the sentinel. */
export async function markDump(storage: Storage, name: string, permanent: boolean): Promise<DumpSentinel> {
  const sentinel = await readDumpSentinel(storage, name);
  if (sentinel.IsPermanent === permanent) return sentinel;
  const updated = { ...sentinel, IsPermanent: permanent };
  await writeDumpSentinel(storage, updated, { createOnly: false });
  return updated;
}
