/**
 * The one interface every storage backend implements. Keys are relative,
 * '/'-separated paths under the configured prefix (wal_005/..., basebackups_005/...).
 */
import type { Readable } from 'node:stream';

/** Small string-to-string metadata stored with an object (checksums, sizes). */
export type ObjectMetadata = Record<string, string>;

export interface ObjectInfo {
  key: string;
  /** Stored (compressed) size in bytes. */
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  metadata?: ObjectMetadata;
  /**
   * Create only: fail with AlreadyExistsError if the key exists. Backends
   * use the service's conditional create where it has one.
   */
  createOnly?: boolean;
}

export interface StoredObject {
  info: ObjectInfo;
  metadata: ObjectMetadata;
  body: Readable;
}

export interface Storage {
  /** Where the objects live, for messages; never contains credentials. */
  readonly location: string;
  /** Objects live on a local or mounted file system: transfers cost CPU rather than waiting on a network. */
  readonly isLocal: boolean;
  /** Streams `body` into `key`. Resolves only once the object is durable. */
  put(key: string, body: Readable, options?: PutOptions): Promise<void>;
  /** Opens `key` for reading; NotFoundError when it does not exist. */
  get(key: string): Promise<StoredObject>;
  /** Describes `key`, or undefined when it does not exist. */
  head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes `key`; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

/** Rejects keys that could escape the prefix. */
export function assertSafeKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new Error(`invalid storage key "${key}"`);
  }
}
