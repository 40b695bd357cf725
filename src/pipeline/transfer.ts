/**
 * The two directions of every transfer:
 *   upload:   file -> compress -> storage.put
 *   download: storage.get -> decompress -> verify -> atomic file
 */
import { createReadStream } from 'node:fs';
import type { Codec } from '../compress/codec.ts';
import { writeFileAtomically } from '../fs/durable.ts';
import { type ContentDigest, VerifyStage } from '../integrity/checksum.ts';
import { METADATA_SHA256, METADATA_SIZE, type ObjectMetadata, type Storage, type StoredObject } from '../storage/storage.ts';
import { chain } from './chain.ts';

const READ_CHUNK = 1 << 18;

export function metadataFor(digest: ContentDigest): ObjectMetadata {
  return { [METADATA_SHA256]: digest.sha256, [METADATA_SIZE]: String(digest.size) };
}

/** The content digest recorded with an object, where walship wrote one. */
export function digestFromMetadata(metadata: ObjectMetadata): Partial<ContentDigest> {
  const size = metadata[METADATA_SIZE];
  return {
    sha256: metadata[METADATA_SHA256],
    size: size !== undefined && /^\d+$/.test(size) ? Number(size) : undefined,
  };
}

export interface UploadOptions {
  codec: Codec;
  level: number;
  /** The file's digest; a promise when it is still being computed alongside the upload. */
  digest: ContentDigest | Promise<ContentDigest>;
  createOnly: boolean;
}

export async function uploadFile(storage: Storage, key: string, path: string, options: UploadOptions): Promise<void> {
  const compressor = await options.codec.compress(options.level);
  const body = chain(createReadStream(path, { highWaterMark: READ_CHUNK }), compressor);
  const metadata = Promise.resolve(options.digest).then(metadataFor);
  await storage.put(key, body, { metadata, createOnly: options.createOnly });
}

/** Decompresses and verifies a stored object into `destination`, atomically and durably. */
export async function downloadToFile(stored: StoredObject, codec: Codec, destination: string): Promise<void> {
  const verify = new VerifyStage(digestFromMetadata(stored.metadata), stored.info.key);
  await writeFileAtomically(destination, chain(stored.body, await codec.decompress(), verify), { mode: 0o600 });
}

/** Decompresses and verifies a stored object, handing its content to `consume` chunk by chunk. */
export async function readVerified(stored: StoredObject, codec: Codec, consume: (chunk: Buffer) => void): Promise<void> {
  const verify = new VerifyStage(digestFromMetadata(stored.metadata), stored.info.key);
  for await (const chunk of chain(stored.body, await codec.decompress(), verify)) consume(chunk as Buffer);
}
