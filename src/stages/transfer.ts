/**
 * The directions of every transfer, each one stream through a list of stages:
 *   upload:   file or stream -> stored form (compress) -> storage.put
 *   download: storage.get -> content (decompress, verify) -> atomic file
 *   relay:    storage.get -> as stored, its content checked on the side -> storage.put (a copy)
 * The stored form is the same for every kind of object (WAL, backup parts),
 * so a stage added to it (encryption) applies to all of them.
 */
import { writeSync } from 'node:fs';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { fillFileAtomically } from '../fs/durable.ts';
import type { PutOptions, Storage, StoredObject } from '../storage/storage.ts';
import { VerifyStage } from './checksum.ts';
import type { Codec, CompressOptions } from './compress/codec.ts';
import { expectedContent } from './object-metadata.ts';
import { Pipeline, type Source, type Stage, type TransformStage } from './pipeline.ts';

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

/**
 * A stored object relayed as it is stored, its content decoded on the side
 * and checked against the integrity metadata stored with it, so a copy that
 * would not read back fails before it is committed. Without a codec (an
 * extension walship cannot read) or anything to check, it passes unchecked.
 */
export function relayStages(codec: Codec | undefined, stored: StoredObject): (Stage | undefined)[] {
  const expected = expectedContent(stored.metadata);
  const decompress = codec?.decompress(stored.info.key);
  if (!codec || (!decompress && expected.checksum === undefined && expected.size === undefined)) return [];
  return [new ContentCheckStage([decompress, new VerifyStage(expected, stored.info.key)])];
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
