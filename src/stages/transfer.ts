/**
 * The two directions of every transfer, each one stream through a list of stages:
 *   upload:   file or stream -> stages -> storage.put
 *   download: storage.get -> stages -> atomic file
 */
import { writeSync } from 'node:fs';
import { fillFileAtomically } from '../fs/durable.ts';
import type { PutOptions, Storage, StoredObject } from '../storage/storage.ts';
import { Pipeline, type Source, type Stage } from './pipeline.ts';

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

/** Streams a stored object through `stages` into `destination`, atomically and durably. */
export async function downloadToFile(stored: StoredObject, stages: readonly (Stage | undefined)[], destination: string): Promise<void> {
  await fillFileAtomically(
    destination,
    (handle) => new Pipeline(stored.body, stages).drain((piece) => writeAllSync(handle.fd, piece)),
    { mode: 0o600 },
  );
}

function writeAllSync(fd: number, data: Buffer): void {
  for (let written = 0; written < data.length; ) written += writeSync(fd, data, written);
}
