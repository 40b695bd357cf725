/**
 * Reading stored WAL: finding a WAL file's object under whichever extension
 * it was stored with, and the little the archive model needs from it: the
 * long page header at the start of a segment (whose cluster, what segment
 * size) and the text of a timeline history file.
 */
import { Readable } from 'node:stream';
import type { ReadMethod } from '../config/settings.ts';
import { describeError, NotFoundError } from '../errors.ts';
import { parseWalLongPageHeader, WAL_LONG_HEADER_SIZE, type WalLongPageHeader } from '../postgres/wal-header.ts';
import { type Codec, codecForExtension, codecsPreferring } from '../stages/compress/codec.ts';
import { Pipeline } from '../stages/pipeline.ts';
import { contentStages } from '../stages/transfer.ts';
import type { Storage, StoredObject } from '../storage/storage.ts';
import { walKey } from './layout.ts';

/** History files list one line per ancestor: anything this large is not one. */
const MAX_CONTENT_BYTES = 16 << 20;

export type Reading<T> = T | { unreadable: string };

/**
 * The stored object of WAL file `name`, under the extension of `preferred`
 * or else of any other method walship reads (stored before
 * WALG_COMPRESSION_METHOD changed, say); undefined when none holds it.
 */
export async function openStoredWal(storage: Storage, name: string, preferred: ReadMethod): Promise<{ stored: StoredObject; codec: Codec } | undefined> {
  const [first, ...others] = codecsPreferring(preferred);
  const stored = await getIfPresent(storage, walKey(name, first!));
  if (stored) return { stored, codec: first! };
  const heads = await Promise.all(others.map((codec) => storage.head(walKey(name, codec))));
  const index = heads.findIndex((head) => head !== undefined);
  if (index < 0) return undefined;
  const codec = others[index]!;
  const found = await getIfPresent(storage, walKey(name, codec));
  return found && { stored: found, codec };
}

async function getIfPresent(storage: Storage, key: string): Promise<StoredObject | undefined> {
  try {
    return await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/**
 * The page header of a stored segment or .partial file. A storage failure is
 * thrown; content that cannot tell (damaged, not WAL) is `unreadable`.
 */
export async function readStoredSegmentHeader(storage: Storage, key: string, extension: string): Promise<Reading<{ header: WalLongPageHeader }>> {
  const content = await readContent(storage, key, extension, { verify: false, enough: WAL_LONG_HEADER_SIZE });
  if ('unreadable' in content) return content;
  try {
    return { header: parseWalLongPageHeader(content.bytes, key) };
  } catch (error) {
    return { unreadable: describeError(error) };
  }
}

/** The verified text of a stored history file; a storage failure is thrown, damaged content is `unreadable`. */
export async function readStoredHistory(storage: Storage, key: string, extension: string): Promise<Reading<{ text: string }>> {
  const content = await readContent(storage, key, extension, { verify: true, enough: Infinity });
  return 'unreadable' in content ? content : { text: content.bytes.toString('utf8') };
}

/** The decompressed start of an object, up to `enough` bytes (the whole object, verified, with `verify`). */
async function readContent(storage: Storage, key: string, extension: string, options: { verify: boolean; enough: number }): Promise<Reading<{ bytes: Buffer }>> {
  const codec = codecForExtension(extension);
  if (!codec) return { unreadable: `it is stored in a format walship cannot read (${extension})` };
  const stored = await storage.get(key);
  // Only a failure of the content itself makes it unreadable; storage's own failures are thrown.
  let storageError: unknown;
  const body = async function* () {
    try {
      yield* stored.body;
    } catch (error) {
      storageError = error;
      throw error;
    }
  };
  const source = Readable.from(body(), { objectMode: false });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of new Pipeline(source, contentStages(storage, codec, stored, { verify: options.verify })).pieces()) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= options.enough) break;
      if (size > MAX_CONTENT_BYTES) return { unreadable: `it is larger than ${MAX_CONTENT_BYTES >> 20} MiB` };
    }
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    if (storageError !== undefined) throw storageError;
    return { unreadable: describeError(error) };
  } finally {
    stored.body.destroy();
  }
}
