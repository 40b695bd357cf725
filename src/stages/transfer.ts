/**
 * The two directions of every transfer:
 *   upload:   file -> compress -> storage.put
 *   download: storage.get -> decompress -> verify -> atomic file
 */
import { createReadStream, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Codec } from '../compress/codec.ts';
import { fillFileAtomically } from '../fs/durable.ts';
import { ContentCheck, type ContentDigest, type ExpectedContent, VerifyStage } from '../integrity/checksum.ts';
import { METADATA_CRC32, METADATA_SIZE, type ObjectMetadata, type Storage, type StoredObject } from '../storage/storage.ts';
import { chain } from './chain.ts';

const READ_CHUNK = 1 << 18;
/** Pieces handed to the thread pool: each hand-off costs, so they are large. */
const THREAD_POOL_READ_CHUNK = 4 << 20;

export function metadataFor(digest: ContentDigest): ObjectMetadata {
  return { [METADATA_CRC32]: digest.checksum, [METADATA_SIZE]: String(digest.size) };
}

/** What walship recorded about an object's content, where it wrote the object. */
export function expectedContent(metadata: ObjectMetadata): ExpectedContent {
  const size = metadata[METADATA_SIZE];
  return {
    algorithm: 'crc32',
    checksum: metadata[METADATA_CRC32],
    size: size !== undefined && /^\d+$/.test(size) ? Number(size) : undefined,
  };
}

export interface UploadOptions {
  codec: Codec;
  level: number;
  /** The file's digest, recorded with the object. */
  digest: ContentDigest;
  createOnly: boolean;
  /**
   * Compress in libuv's thread pool, so several uploads in one process
   * compress on several CPUs; otherwise on the main thread, with less memory
   * and no hand-offs, which is faster for one file alone.
   */
  compressInThreadPool?: boolean;
}

export async function uploadFile(storage: Storage, key: string, path: string, options: UploadOptions): Promise<void> {
  const { codec, level, compressInThreadPool: inThreadPool = false } = options;
  const wholeFile = inThreadPool ? undefined : await codec.compressFile?.(path, level);
  const body = wholeFile ?? chain(createReadStream(path, { highWaterMark: inThreadPool ? THREAD_POOL_READ_CHUNK : READ_CHUNK }), await codec.compress(level, { inThreadPool }));
  await storage.put(key, body, { metadata: metadataFor(options.digest), createOnly: options.createOnly });
}

/** Decompresses and verifies a stored object into `destination`, atomically and durably. */
export async function downloadToFile(stored: StoredObject, codec: Codec, destination: string): Promise<void> {
  const check = new ContentCheck(expectedContent(stored.metadata), stored.info.key);
  await fillFileAtomically(
    destination,
    async (handle) => {
      const decompressed = await codec.decompressInto?.(
        stored.body,
        (piece) => {
          check.update(piece);
          writeAllSync(handle.fd, piece);
        },
        stored.info.key,
      );
      if (decompressed) check.finish();
      else await handle.writeFile(await verifiedContent(stored, codec));
    },
    { mode: 0o600 },
  );
}

function writeAllSync(fd: number, data: Buffer): void {
  for (let written = 0; written < data.length; ) written += writeSync(fd, data, written);
}

/** A stored object's content, decompressed; the stream fails if it does not verify. */
export async function verifiedContent(stored: StoredObject, codec: Codec): Promise<Readable> {
  return chain(stored.body, await codec.decompress(), new VerifyStage(expectedContent(stored.metadata), stored.info.key));
}
