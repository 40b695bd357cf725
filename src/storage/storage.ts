/**
 * The one interface every storage backend implements. Keys are relative,
 * '/'-separated paths under the configured prefix (wal_005/..., basebackups_005/...).
 */
import type { Readable } from 'node:stream';
import type { EncryptionKey } from '../config/encryption.ts';
import { WalshipError } from '../errors.ts';

/** Small string-to-string metadata stored with an object (checksums, sizes). */
export type ObjectMetadata = Record<string, string>;

export interface ObjectInfo {
  key: string;
  /** Stored (compressed) size in bytes. */
  size: number;
  lastModified: Date;
  /** In listings, only where the backend's listing includes metadata (capabilities.listingIncludesMetadata). */
  metadata?: ObjectMetadata;
}

export interface PutOptions {
  metadata?: ObjectMetadata;
  /**
   * Create only: fail with AlreadyExistsError if the key exists. Backends
   * use the service's conditional create where it has one.
   */
  createOnly?: boolean;
  /**
   * The body's bytes as known before they are read (a copy relays an object
   * whose size and checksum its source recorded): a backend may then stream
   * them in one request, which the service checks against that checksum, and
   * open them again for a retry.
   */
  known?: KnownBody;
}

export interface KnownBody {
  size: number;
  /** A checksum of the bytes, lowercase hex. */
  checksum: { algorithm: 'crc32' | 'sha256'; hex: string };
  /** The same bytes again from the start, through the same checks as the body. */
  reopen(): Promise<Readable>;
}

export interface StoredObject {
  info: ObjectInfo;
  metadata: ObjectMetadata;
  body: Readable;
  /**
   * The CRC-32 (lowercase hex) of the stored bytes, as the store recorded it
   * when they were written, where it keeps one: a reader can check the bytes
   * as they are, without decoding them (a copy relays them so).
   */
  storedCrc32?: string;
}

/** What a backend really does, for callers to ask instead of asking which backend it is. */
export interface StorageCapabilities {
  /** Objects live on a local or mounted file system: transfers cost CPU rather than waiting on a network. */
  localFileSystem: boolean;
  /**
   * How a create-only put refuses a key that is taken: 'enforced' atomically
   * by the store; 'best-effort' where stores that speak the protocol may
   * ignore the condition (S3-compatible stores), so a race can replace an object.
   */
  conditionalCreate: 'enforced' | 'best-effort';
  /** list() yields each object's metadata, so checking stored objects needs no request per object. */
  listingIncludesMetadata: boolean;
  /**
   * How deleteMany() removes many keys: 'batched' with requests of many keys
   * each (S3 DeleteObjects, Azure's blob batch), 'parallel' with one request
   * (or unlink) per key, several at once.
   */
  batchDelete: 'batched' | 'parallel';
}

export interface Storage {
  /** Where the objects live, for messages; never contains credentials. */
  readonly location: string;
  readonly capabilities: StorageCapabilities;
  /** Streams `body` into `key`. Resolves only once the object is durable. */
  put(key: string, body: Readable, options?: PutOptions): Promise<void>;
  /** Opens `key` for reading; NotFoundError when it does not exist. */
  get(key: string): Promise<StoredObject>;
  /** Describes `key`, or undefined when it does not exist. */
  head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Whether any object's key starts with `prefix`, where the backend can
   * tell without the listing's first page costing a whole folder (the file
   * storage must read and sort every name before its first key). Ask
   * holdsAnyObject(), which falls back on list().
   */
  holdsAny?(prefix: string): Promise<boolean>;
  /** Removes `key`; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes every key in `keys`, missing ones being no error, with the
   * retry rules of single requests. After the first failure it starts no new
   * request, and rejects once those in flight have settled.
   */
  deleteMany(keys: readonly string[]): Promise<void>;
  /**
   * The archive's client-side encryption key, configured with the storage:
   * the stages encrypt what they store here with it and decrypt what they
   * read (stages/transfer.ts). The backend itself never uses it.
   */
  readonly encryption?: EncryptionKey;
}

/** Whether `storage` holds any object whose key starts with `prefix`. */
export async function holdsAnyObject(storage: Storage, prefix: string): Promise<boolean> {
  if (storage.holdsAny) return storage.holdsAny(prefix);
  for await (const _ of storage.list(prefix)) return true;
  return false;
}

/** `keys` cut into batches of at most `size`, in order. */
export function inBatches(keys: readonly string[], size: number): string[][] {
  const batches: string[][] = [];
  for (let start = 0; start < keys.length; start += size) batches.push(keys.slice(start, start + size));
  return batches;
}

/** Rejects keys that could escape the prefix. */
export function assertSafeKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new WalshipError(`invalid storage key "${key}": keys are relative paths without empty, . or .. segments`);
  }
}
