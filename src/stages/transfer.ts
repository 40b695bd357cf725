/**
 * The directions of every transfer, each one stream through a list of stages:
 *   upload:   file or stream -> stored form (compress, encrypt) -> storage.put
 *   download: storage.get -> content (decrypt, decompress, verify) -> atomic file
 *   relay:    storage.get -> as stored, its content checked on the side -> storage.put (a copy)
 * The stored form is the same for every kind of object (WAL, backup parts),
 * and the key travels with the storage it encrypts for, so every object
 * stored through here is encrypted when the archive has a key.
 */
import { writeSync } from 'node:fs';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { type AtomicWriteOptions, fillFileAtomically } from '../fs/durable.ts';
import type { ObjectMetadata, PutOptions, Storage, StoredObject } from '../storage/storage.ts';
import { type ContentDigest, VerifyStage } from './checksum.ts';
import type { Codec, CompressOptions, WritableCodec } from './compress/codec.ts';
import { decryptStage, encryptStage, hintingEncryption, keyIdOf } from './encrypt/encryption.ts';
import { ENCRYPTION_METHOD, encryptionMetadata, expectedContent, integrityMetadata, type RecordedEncryption, recordedEncryption } from './object-metadata.ts';
import { Pipeline, type Source, type Stage, type TransformStage } from './pipeline.ts';

/** Content to its stored form in `storage`: compressed, then encrypted when the archive has a key. */
export function storedFormStages(storage: Storage, codec: WritableCodec, level: number, options: CompressOptions = {}): (Stage | undefined)[] {
  return [codec.compress(level, options), storage.encryption && encryptStage(storage.encryption)];
}

/** The metadata an object stored in that form carries: its encryption, and the content's digest where one is given. */
export async function storedFormMetadata(storage: Storage, digest?: ContentDigest): Promise<ObjectMetadata> {
  const key = storage.encryption;
  return {
    ...(digest && integrityMetadata(digest, key !== undefined)),
    ...(key && encryptionMetadata(await keyIdOf(key))),
  };
}

/** How what is stored in that form is encrypted, for a record that describes many objects (a backup's sentinel). */
export async function storedFormEncryption(storage: Storage): Promise<RecordedEncryption> {
  return storage.encryption ? { method: ENCRYPTION_METHOD, keyId: await keyIdOf(storage.encryption) } : { method: 'none' };
}

export interface ContentOptions {
  /** false where something else checks the content (a backup's sentinel) or the reader stops early (a page header). */
  verify?: boolean;
  /** How the object is encrypted, where its own metadata does not say (a backup part: its sentinel). */
  recorded?: RecordedEncryption;
}

/**
 * A stored object back to its content, checked at the end against the
 * integrity metadata stored with it.
 */
export function contentStages(storage: Storage, codec: Codec, stored: StoredObject, options: ContentOptions = {}): (Stage | undefined)[] {
  const what = stored.info.key;
  const recorded = options.recorded ?? recordedEncryption(stored.metadata);
  const decompress = codec.decompress(what);
  return [
    decryptStage(recorded, storage.encryption, what),
    recorded.method === undefined && !storage.encryption ? hintingEncryption(decompress) : decompress,
    (options.verify ?? true) ? new VerifyStage(expectedContent(stored.metadata), what) : undefined,
  ];
}

/**
 * A stored object relayed as it is stored, checked on the way so that a
 * copy that would not read back fails before it is committed: against the
 * CRC-32 of its bytes where `storage` recorded one when they were written;
 * otherwise its content is decoded on the side (decrypted with `storage`'s
 * key, decompressed) and checked against the integrity metadata stored with
 * it. An object walship cannot decode (an unknown extension, encrypted while
 * `storage` has no key: a copy needs none) and whose bytes nothing records
 * passes as it is.
 */
export function relayStages(storage: Storage, codec: Codec | undefined, stored: StoredObject, options: ContentOptions = {}): Stage[] {
  // The store recorded the bytes' own CRC-32: they are checked as they are, with no decoding.
  if (stored.storedCrc32 !== undefined) return [new VerifyStage({ algorithm: 'crc32', checksum: stored.storedCrc32, size: stored.info.size }, stored.info.key)];
  const recorded = options.recorded ?? recordedEncryption(stored.metadata);
  const undecryptable = recorded.method !== undefined && recorded.method !== 'none' && (recorded.method !== ENCRYPTION_METHOD || !storage.encryption);
  if (!codec || undecryptable) return [];
  return [new ContentCheckStage(contentStages(storage, codec, stored, { ...options, recorded }))];
}

/** Passes the bytes through unchanged while `decoding` (decompression, then verification) runs over a copy of them. */
class ContentCheckStage implements TransformStage {
  readonly name = 'check-content';
  private readonly decoding: (Stage | undefined)[];

  constructor(decoding: (Stage | undefined)[]) {
    this.decoding = decoding;
  }

  async transform(): Promise<Transform> {
    const side = new PassThrough();
    // The decoding's own failure is what gets reported; later errors of the side stream say nothing more.
    side.on('error', () => undefined);
    let failure: { error: unknown } | undefined;
    let waiting: TransformCallback | undefined;
    const checked = new Pipeline(side, this.decoding).drain(() => undefined).catch((error: unknown) => {
      failure = { error };
      waiting?.(error as Error);
      waiting = undefined;
    });
    return new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (failure) return callback(failure.error as Error);
        if (side.write(chunk)) return callback(null, chunk);
        waiting = callback;
        side.once('drain', () => {
          const resume = waiting;
          waiting = undefined;
          resume?.(null, chunk);
        });
      },
      flush(callback) {
        side.end();
        void checked.then(() => callback(failure ? (failure.error as Error) : null));
      },
      destroy(error, callback) {
        waiting = undefined;
        side.destroy();
        callback(error);
      },
    });
  }
}

/** Streams `source` through `stages` into `key`; resolves, once the object is durable, to the transfer and its results. */
export async function upload(storage: Storage, key: string, source: Source, stages: readonly (Stage | undefined)[], options: PutOptions): Promise<Pipeline> {
  const transfer = new Pipeline(source, stages);
  const body = await transfer.readable();
  try {
    await storage.put(key, body, options);
  } catch (error) {
    // A put that gave up early must not leave the stages (and their source) waiting.
    body.destroy();
    throw error;
  }
  return transfer;
}

/** Streams a stored object through `stages` into `destination`, atomically and durably (mode 0600 unless `options` say otherwise). */
export async function downloadToFile(stored: StoredObject, stages: readonly (Stage | undefined)[], destination: string, options: AtomicWriteOptions = {}): Promise<void> {
  await fillFileAtomically(
    destination,
    (handle) => new Pipeline(stored.body, stages).drain((piece) => writeAllSync(handle.fd, piece)),
    { mode: 0o600, ...options },
  );
}

function writeAllSync(fd: number, data: Buffer): void {
  for (let written = 0; written < data.length; ) written += writeSync(fd, data, written);
}
