/**
 * Restoring one WAL file for restore_command. Only a file that is truly absent
 * is reported as NotFoundError; every other problem is an error, so that
 * recovery never mistakes a broken archive for the end of the WAL.
 */
import { WAL_PREFIX, walKey } from '../archive/layout.ts';
import { openStoredWal } from '../archive/stored-wal.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { NotFoundError, WalshipError } from '../errors.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { UNREADABLE_EXTENSIONS } from '../stages/compress/codec.ts';
import { contentStages, downloadToFile } from '../stages/transfer.ts';
import type { Storage } from '../storage/storage.ts';

export interface WalFetchSettings {
  storage: Storage;
  compression: CompressionSettings;
}

export async function fetchWalFile(settings: WalFetchSettings, name: string, destination: string): Promise<void> {
  requireWalFileName(name);
  const { storage } = settings;
  const { stored, codec } = (await openStoredWal(storage, name, settings.compression.method)) ?? (await explainAbsence(storage, name));
  await downloadToFile(stored, contentStages(codec, stored), destination);
}

/** Why `name` cannot be read: stored in a format walship cannot read, no archive there at all, or truly absent (NotFoundError). */
async function explainAbsence(storage: Storage, name: string): Promise<never> {
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

async function holdsAnyWal(storage: Storage): Promise<boolean> {
  for await (const _ of storage.list(WAL_PREFIX)) return true;
  return false;
}
