/**
 * What wal-push does with the file the archiver hands it: answer at once for
 * a file the look-ahead pusher made durable already, or else upload it here,
 * starting the pusher for the files waiting behind it. Exit 0 only once the
 * file is durable in storage.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { CompressionSettings } from '../config/settings.ts';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { openStorage } from '../storage/open.ts';
import type { StorageSpec } from '../storage/spec.ts';
import { spawnDetachedWalship } from './background.ts';
import { markPushedAheadDone, readyFiles } from './lookahead/archive-status.ts';
import { CopyQueue } from './lookahead/copy-queue.ts';
import { ArchivedRecords } from './lookahead/records.ts';
import { lookAheadArea, spoolOf, spoolSubdirectory } from './spool.ts';

export interface ArchivingSettings {
  storage: StorageSpec;
  compression: CompressionSettings;
  preventOverwrite: boolean;
  /** Look-ahead archiving is on (WALG_UPLOAD_CONCURRENCY above 1, TOTAL_BG_UPLOADED_LIMIT above 0). */
  lookAhead: boolean;
  /** Mark the files the pusher made durable as done in archive_status (PG_READY_RENAME). */
  readyRename: boolean;
  /** WALSHIP_SPOOL_DIR, when set. */
  spoolSetting: string | undefined;
  /** The config file, passed on to the pusher. */
  configPath: string | undefined;
  /** The config files of the copies (WALSHIP_COPIES), which get each file in the background. */
  copies: string[];
}

/** Archives the WAL file at `path`; resolves only once it is durable in storage. */
export async function archiveWalFile(settings: ArchivingSettings, path: string): Promise<void> {
  const name = basename(path);
  const walDirectory = dirname(resolve(path));
  const records = await openRecords(settings, walDirectory);

  if (!records || !settings.lookAhead) {
    await pushHere(settings, path, records, false);
    if (records) await handToCopies(records, settings, name, true);
    return;
  }
  if (await records.consume(name, path)) {
    log.debug('already pushed ahead of the archiver', { file: name });
    await handToCopies(records, settings, name, false);
  } else {
    await startPusher(records, walDirectory, settings.configPath, name).catch((error: unknown) => {
      log.info(`look-ahead pusher not started: ${describeError(error)}`);
    });
    if (await records.awaitOtherUpload(name, path)) {
      log.debug('pushed ahead of the archiver while it waited', { file: name });
      await handToCopies(records, settings, name, false);
    } else {
      await pushHere(settings, path, records, true);
      await handToCopies(records, settings, name, true);
    }
  }
  if (settings.readyRename) await markDone(records, walDirectory, name);
}

/**
 * Once `name` is durable in the main storage: queues it for the copies (the
 * pusher queues what it uploads itself) and makes sure their forwarder runs.
 * Copies only ever get files in the background: nothing here waits for them,
 * and no failure here fails the archiving.
 */
async function handToCopies(records: ArchivedRecords, settings: ArchivingSettings, name: string, queue: boolean): Promise<void> {
  if (settings.copies.length === 0) return;
  try {
    const copies = new CopyQueue(records.directory);
    // A file pushed ahead was queued by the pusher, for the copies it knew of: the ones configured since get it here.
    if (queue || (await copies.configure(settings.copies))) await copies.add(name, settings.copies);
    if (await copies.forwarder.holder()) return;
    spawnDetachedWalship(['wal-copy-ahead', records.directory], settings.configPath, join(records.directory, 'forwarder.log'));
  } catch (error) {
    log.info(`${name} reaches the copies with the next walship copy: ${describeError(error)}`);
  }
}

/**
 * Starts the cluster's pusher (wal/lookahead/pusher.ts) when files other than
 * `current` wait and no pusher is running.
 */
async function startPusher(records: ArchivedRecords, walDirectory: string, configPath: string | undefined, current: string): Promise<void> {
  if ((await readyFiles(walDirectory)).every((name) => name === current)) return;
  if (await records.pusher.holder()) return;
  spawnDetachedWalship(['wal-push-ahead', walDirectory, records.directory], configPath, join(records.directory, 'pusher.log'));
}

/**
 * Uploads the file in this process, checked against the archive's identity
 * (which `records` keep once verified). With look-ahead on, it holds the
 * file's claim so the pusher leaves it alone, and while a pusher runs it also
 * records the upload: until the archiver marks the file done, the pusher
 * would otherwise see a waiting file nobody claims and upload it again, only
 * to find it stored and compare contents.
 */
async function pushHere(settings: ArchivingSettings, path: string, records: ArchivedRecords | undefined, lookAhead: boolean): Promise<void> {
  // Not needed when the pusher was ahead.
  const [{ pushWalFile }, { ArchiveIdentity }] = await Promise.all([import('./push.ts'), import('../archive/identity.ts')]);
  const storage = await openStorage(settings.storage);
  const identity = new ArchiveIdentity(storage, settings.storage.prefixSetting, records);
  const name = basename(path);
  const claim = lookAhead ? records?.claim(name) : undefined;
  const claimed = await claim?.acquire();
  try {
    await pushWalFile({ storage, identity, compression: settings.compression, preventOverwrite: settings.preventOverwrite }, path);
    // Only while a pusher runs: it, and the next wal-push, remove records whose file no longer waits.
    if (claim && (await records!.pusher.holder())) await records!.record(name, path);
  } finally {
    if (claimed) await claim!.release();
  }
}

/** Tells PostgreSQL about the files the pusher made durable, so its archiver need not ask for each one. */
async function markDone(records: ArchivedRecords, walDirectory: string, current: string): Promise<void> {
  try {
    const marked = await markPushedAheadDone(records, walDirectory, current);
    if (marked.length > 0) log.debug('marked done, pushed ahead of the archiver', { files: marked.length, last: marked.at(-1) });
  } catch (error) {
    // Not fatal: the archiver asks for those files itself, and their records (or storage) answer.
    log.info(`could not mark files pushed ahead as done: ${describeError(error)}`);
  }
}

/**
 * The records kept about this archive in the spool, for a file in pg_wal
 * (next to archive_status/): look-ahead's, and the archive's verified identity.
 */
async function openRecords(settings: ArchivingSettings, walDirectory: string): Promise<ArchivedRecords | undefined> {
  if (!existsSync(join(walDirectory, 'archive_status'))) return undefined;
  const archive = settings.storage.identity;
  const directory = await spoolSubdirectory(spoolOf(dirname(walDirectory), settings.spoolSetting), lookAheadArea(archive));
  return directory ? new ArchivedRecords(directory, archive) : undefined;
}
