/**
 * Restoring one WAL file for restore_command. Only a file that is truly absent
 * is reported as NotFoundError; every other problem is an error, so that
 * recovery never mistakes a broken archive for the end of the WAL.
 */
import { WAL_PREFIX } from '../archive/layout.ts';
import { openStoredWal } from '../archive/stored-wal.ts';
import type { ReadMethod } from '../config/settings.ts';
import { NotFoundError, WalshipError } from '../errors.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { contentStages, downloadToFile } from '../stages/transfer.ts';
import { holdsAnyObject, type Storage } from '../storage/storage.ts';

export interface WalFetchSettings {
  storage: Storage;
  /** The method to look for first (WALG_COMPRESSION_METHOD). */
  preferredMethod: ReadMethod;
}

export async function fetchWalFile(settings: WalFetchSettings, name: string, destination: string): Promise<void> {
  requireWalFileName(name);
  const { storage } = settings;
  const { stored, codec } = (await openStoredWal(storage, name, settings.preferredMethod)) ?? (await explainAbsence(storage, name));
  await downloadToFile(stored, contentStages(storage, codec, stored), destination);
}

/** Why `name` cannot be read: no archive there at all, or truly absent (NotFoundError). */
async function explainAbsence(storage: Storage, name: string): Promise<never> {
  if (!(await holdsAnyObject(storage, WAL_PREFIX))) {
    throw new WalshipError(
      `${storage.location} holds no ${WAL_PREFIX} objects at all: check the storage prefix and that the storage is mounted`,
    );
  }
  throw new NotFoundError(`${name} is not in the archive`);
}

