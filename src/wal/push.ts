/**
 * Archiving one WAL file: verify its name and that its cluster owns the
 * archive (and that this host encrypts it as the archive is), upload it compressed with a content checksum, and never replace
 * different content already stored.
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ArchiveIdentity } from '../archive/identity.ts';
import { walKey } from '../archive/layout.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { AlreadyExistsError, OverwriteRefusedError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { readWalLongPageHeader } from '../postgres/wal-header.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { type ContentDigest, digestFile } from '../stages/checksum.ts';
import { type Codec, codecFor, codecsPreferring } from '../stages/compress/codec.ts';
import { expectedContent } from '../stages/object-metadata.ts';
import { Pipeline } from '../stages/pipeline.ts';
import { contentStages, storedFormMetadata, storedFormStages, upload } from '../stages/transfer.ts';
import type { ObjectMetadata, Storage } from '../storage/storage.ts';

export interface WalPushSettings {
  storage: Storage;
  compression: CompressionSettings;
  preventOverwrite: boolean;
  /** The cluster the archive belongs to: segments of any other are refused. */
  identity: ArchiveIdentity;
  /** Compress in libuv's thread pool: for several CPU-bound pushes at once (the look-ahead pusher on local storage). */
  compressInThreadPool?: boolean;
}

export type PushOutcome = 'uploaded' | 'already-archived' | 'overwritten';

interface StoredCopy {
  key: string;
  codec: Codec;
  metadata: ObjectMetadata;
}

export async function pushWalFile(settings: WalPushSettings, path: string): Promise<PushOutcome> {
  const { storage, compression } = settings;
  const name = basename(path);
  const wal = requireWalFileName(name);
  // History and .backup files are text without a page header: only their encryption is checked.
  if (wal.kind === 'segment' || wal.kind === 'partial') {
    await settings.identity.requireCluster(readWalLongPageHeader(path), `${path} was written by`);
  } else {
    await settings.identity.requireEncryption();
  }
  let digest: ContentDigest;
  try {
    digest = digestFile(path, 'crc32');
  } catch (error) {
    throw new WalshipError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const codec = codecFor(compression.method);
  const key = walKey(name, codec);
  const stages = () => storedFormStages(storage, codec, compression.level, { inThreadPool: settings.compressInThreadPool });
  // The content's digest goes with the object, so it is known before the upload starts.
  const metadata = await storedFormMetadata(storage, digest);
  const store = (createOnly: boolean) => upload(storage, key, { file: path }, stages(), { metadata, createOnly });

  let copies = await findStoredCopies(storage, name);
  if (copies.length === 0) {
    try {
      await store(true);
      log.info('archived', { file: name, key, bytes: digest.size });
      return 'uploaded';
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      copies = await findStoredCopies(storage, name); // another push won the race
    }
  }

  const different: StoredCopy[] = [];
  for (const copy of copies) {
    if (!(await storedContentEquals(storage, copy, path, digest))) different.push(copy);
  }
  if (different.length === 0) {
    log.info('already archived with identical content', { file: name });
    return 'already-archived';
  }
  if (settings.preventOverwrite || wal.kind === 'history') {
    const hint = wal.kind === 'history'
      ? 'history files are never overwritten'
      : 'is another cluster archiving to the same storage prefix? (WALG_PREVENT_WAL_OVERWRITE=false would allow it)';
    throw new OverwriteRefusedError(
      `refusing to overwrite ${different[0]!.key} in ${storage.location}: it holds different content than ${path}; ${hint}`,
    );
  }
  await store(false);
  for (const copy of different) if (copy.key !== key) await storage.delete(copy.key);
  log.warning('overwrote different archived content (WALG_PREVENT_WAL_OVERWRITE=false)', { file: name, key });
  return 'overwritten';
}

/** Every stored copy of `name`, under any extension walship can read. */
async function findStoredCopies(storage: Storage, name: string): Promise<StoredCopy[]> {
  const codecs = codecsPreferring('zstd');
  const heads = await Promise.all(codecs.map((codec) => storage.head(walKey(name, codec))));
  return heads.flatMap((head, index) => (head ? [{ key: head.key, codec: codecs[index]!, metadata: head.metadata }] : []));
}

async function storedContentEquals(storage: Storage, copy: StoredCopy, path: string, local: ContentDigest): Promise<boolean> {
  const recorded = expectedContent(copy.metadata);
  // A different checksum or size settles it; a match is confirmed on the content itself.
  if (recorded.checksum !== undefined && recorded.checksum !== local.checksum) return false;
  if (recorded.size !== undefined && recorded.size !== local.size) return false;
  return storedContentMatchesFile(storage, copy, path, local.size);
}

/** Compares a stored object's content with the local file byte for byte, streaming both. */
async function storedContentMatchesFile(storage: Storage, copy: StoredCopy, path: string, size: number): Promise<boolean> {
  const handle = await open(path, 'r');
  let offset = 0;
  let local = Buffer.alloc(0);
  try {
    const stored = await storage.get(copy.key);
    // Leaving the loop early stops the download.
    for await (const chunk of new Pipeline(stored.body, contentStages(storage, copy.codec, stored)).pieces()) {
      if (local.length < chunk.length) local = Buffer.allocUnsafe(chunk.length);
      const { bytesRead } = await handle.read(local, 0, chunk.length, offset);
      if (bytesRead !== chunk.length || !local.subarray(0, bytesRead).equals(chunk)) return false;
      offset += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return offset === size;
}
