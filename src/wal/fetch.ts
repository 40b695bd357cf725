/**
 * Restoring one WAL file for restore_command. Only a file that is truly absent
 * is reported as NotFoundError; every other problem is an error, so that
 * recovery never mistakes a broken archive for the end of the WAL.
 */
import { WAL_PREFIX, walKey } from '../archive/layout.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { NotFoundError, WalshipError } from '../errors.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { type Codec, codecsPreferring, UNREADABLE_EXTENSIONS } from '../stages/compress/codec.ts';
import { contentStages, downloadToFile } from '../stages/transfer.ts';
import type { Storage, StoredObject } from '../storage/storage.ts';

export interface WalFetchSettings {
  storage: Storage;
  compression: CompressionSettings;
}

export async function fetchWalFile(settings: WalFetchSettings, name: string, destination: string): Promise<void> {
  requireWalFileName(name);
  const { stored, codec } = await openStoredWal(settings, name);
  await downloadToFile(stored, contentStages(settings.storage, codec, stored), destination);
}

async function openStoredWal(settings: WalFetchSettings, name: string): Promise<{ stored: StoredObject; codec: Codec }> {
  const { storage } = settings;
  const [preferred, ...others] = codecsPreferring(settings.compression.method);
  const first = await getIfPresent(storage, walKey(name, preferred!));
  if (first) return { stored: first, codec: preferred! };

  // Stored under another method, for example before WALG_COMPRESSION_METHOD changed.
  const heads = await Promise.all(others.map((codec) => storage.head(walKey(name, codec))));
  const index = heads.findIndex((head) => head !== undefined);
  if (index >= 0) {
    const codec = others[index]!;
    const stored = await getIfPresent(storage, walKey(name, codec));
    if (stored) return { stored, codec };
  }

  for (const extension of UNREADABLE_EXTENSIONS) {
    const key = walKey(name, { extension });
    if (await storage.head(key)) throw new WalshipError(`${key} is stored in a format walship cannot read (${extension})`);
  }
  if (!(await holdsAnyWal(storage))) {
    throw new WalshipError(
      `${storage.location} holds no ${WAL_PREFIX} objects at all: check the storage prefix and that the storage is mounted`,
    );
  }
  throw new NotFoundError(`${name} is not in the archive`);
}

async function getIfPresent(storage: Storage, key: string): Promise<StoredObject | undefined> {
  try {
    return await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

async function holdsAnyWal(storage: Storage): Promise<boolean> {
  for await (const _ of storage.list(WAL_PREFIX)) return true;
  return false;
}
