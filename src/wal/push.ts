/**
 * Archiving one WAL file: verify its name, upload it compressed with a
 * content checksum, and never replace different content already stored.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { basename } from 'node:path';
import { type Codec, codecFor, codecsPreferring } from '../compress/codec.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { AlreadyExistsError, OverwriteRefusedError, WalshipError } from '../errors.ts';
import { type ContentDigest, digestFile } from '../integrity/checksum.ts';
import { log } from '../log/logger.ts';
import { digestFromMetadata, readVerified, uploadFile } from '../pipeline/transfer.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { walObjectKey } from '../storage/layout.ts';
import type { ObjectMetadata, Storage } from '../storage/storage.ts';

export interface WalPushSettings {
  storage: Storage;
  compression: CompressionSettings;
  preventOverwrite: boolean;
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
  await access(path, constants.R_OK).catch((error: unknown) => {
    throw new WalshipError(`cannot read ${path}: ${(error as Error).message}`);
  });
  // The checksum pass runs alongside the lookups and the compression.
  const digest = digestFile(path);
  digest.catch(() => undefined);
  const codec = codecFor(compression.method);
  const key = walObjectKey(name, codec);
  const upload = (createOnly: boolean) => uploadFile(storage, key, path, { codec, level: compression.level, digest, createOnly });

  let copies = await findStoredCopies(storage, name);
  if (copies.length === 0) {
    try {
      await upload(true);
      log.info('archived', { file: name, key, bytes: (await digest).size });
      return 'uploaded';
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      copies = await findStoredCopies(storage, name); // another push won the race
    }
  }

  const different: StoredCopy[] = [];
  for (const copy of copies) {
    if (!(await storedContentEquals(storage, copy, await digest))) different.push(copy);
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
  await upload(false);
  for (const copy of different) if (copy.key !== key) await storage.delete(copy.key);
  log.warning('overwrote different archived content (WALG_PREVENT_WAL_OVERWRITE=false)', { file: name, key });
  return 'overwritten';
}

/** Every stored copy of `name`, under any extension walship can read. */
async function findStoredCopies(storage: Storage, name: string): Promise<StoredCopy[]> {
  const codecs = codecsPreferring('zstd');
  const heads = await Promise.all(codecs.map((codec) => storage.head(walObjectKey(name, codec))));
  return heads.flatMap((head, index) => (head ? [{ key: head.key, codec: codecs[index]!, metadata: head.metadata }] : []));
}

async function storedContentEquals(storage: Storage, copy: StoredCopy, local: ContentDigest): Promise<boolean> {
  const recorded = digestFromMetadata(copy.metadata);
  if (recorded.sha256 !== undefined) return recorded.sha256 === local.sha256 && (recorded.size ?? local.size) === local.size;
  // No checksum recorded (written by another tool): compare the content itself.
  const stored = await storage.get(copy.key);
  const hash = createHash('sha256');
  await readVerified(stored, copy.codec, (chunk) => hash.update(chunk));
  return hash.digest('hex') === local.sha256;
}
