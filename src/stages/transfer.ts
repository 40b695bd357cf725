/**
 * The two directions of every transfer, each one stream through a list of stages:
 *   upload:   file or stream -> stored form (compress) -> storage.put
 *   download: storage.get -> content (decompress, verify) -> atomic file
 * The stored form is the same for every kind of object (WAL, backup parts),
 * so a stage added to it (encryption) applies to all of them.
 */
import { writeSync } from 'node:fs';
import { type AtomicWriteOptions, fillFileAtomically } from '../fs/durable.ts';
import type { PutOptions, Storage, StoredObject } from '../storage/storage.ts';
import { VerifyStage } from './checksum.ts';
import type { Codec, CompressOptions } from './compress/codec.ts';
import { expectedContent } from './object-metadata.ts';
import { Pipeline, type Source, type Stage } from './pipeline.ts';

/** Content to its stored form. */
export function storedFormStages(codec: Codec, level: number, options: CompressOptions = {}): (Stage | undefined)[] {
  return [codec.compress(level, options)];
}

/**
 * A stored object back to its content, checked at the end against the
 * integrity metadata stored with it; `verify: false` where something else
 * checks it (a backup's sentinel) or the reader stops early (a page header).
 */
export function contentStages(codec: Codec, stored: StoredObject, { verify = true } = {}): (Stage | undefined)[] {
  const what = stored.info.key;
  return [codec.decompress(what), verify ? new VerifyStage(expectedContent(stored.metadata), what) : undefined];
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
