/**
 * wal-push <path>: archive_command. Exit 0 only once the file is durable in
 * storage. A detached pusher uploads the next `.ready` files ahead of the
 * archiver, so its calls for them return at once.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Config } from '../config/config.ts';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readReadyRename, readUploadConcurrency } from '../config/settings.ts';
import { describeError, ExitCode } from '../errors.ts';
import { log } from '../log/logger.ts';
import { openStorage, storageIdentity, storagePrefixSetting } from '../storage/open.ts';
import { ArchivedRecords, startPusher } from '../wal/lookahead.ts';
import type { WalPushSettings } from '../wal/push.ts';
import { spoolDirectory, spoolSubdirectory } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

type PushSettings = Omit<WalPushSettings, 'storage' | 'identity'>;

export async function run({ config }: CommandContext, [path]: string[]): Promise<number> {
  const settings = { compression: readCompression(config), preventOverwrite: readPreventWalOverwrite(config) };
  const readyRename = readReadyRename(config);
  const name = basename(path!);
  const walDirectory = dirname(resolve(path!));
  const records = await openRecords(config, walDirectory);

  if (records && lookAheadEnabled(config)) {
    if (await records.consume(name, path!)) {
      log.debug('already pushed ahead of the archiver', { file: name });
    } else {
      await startPusher(records, walDirectory, config.filePath, name).catch((error: unknown) => {
        log.info(`look-ahead pusher not started: ${describeError(error)}`);
      });
      if (await records.awaitOtherUpload(name, path!)) {
        log.debug('pushed ahead of the archiver while it waited', { file: name });
      } else {
        await pushHere(config, settings, path!, records, true);
      }
    }
    if (readyRename) await markPushedAheadDone(records, walDirectory, name);
    return ExitCode.ok;
  }
  await pushHere(config, settings, path!, records, false);
  return ExitCode.ok;
}

/**
 * Uploads the file in this process, checked against the archive's identity
 * (which `records` keep once verified). With look-ahead on, it holds the
 * file's claim so the pusher leaves it alone, and while a pusher runs it also
 * records the upload: until the archiver marks the file done, the pusher
 * would otherwise see a waiting file nobody claims and upload it again, only
 * to find it stored and compare contents.
 */
async function pushHere(config: Config, settings: PushSettings, path: string, records: ArchivedRecords | undefined, lookAhead: boolean): Promise<void> {
  // Not needed when the pusher was ahead.
  const [{ pushWalFile }, { ArchiveIdentity }] = await Promise.all([import('../wal/push.ts'), import('../archive/identity.ts')]);
  const storage = await openStorage(config);
  const identity = new ArchiveIdentity(storage, storagePrefixSetting(config), records);
  const name = basename(path);
  const claim = lookAhead ? records?.claim(name) : undefined;
  const claimed = await claim?.acquire();
  try {
    await pushWalFile({ storage, identity, ...settings }, path);
    // Only while a pusher runs: it, and the next wal-push, remove records whose file no longer waits.
    if (claim && (await records!.pusher.holder())) await records!.record(name, path);
  } finally {
    if (claimed) await claim!.release();
  }
}

/** Tells PostgreSQL about the files the pusher made durable, so its archiver need not ask for each one (PG_READY_RENAME). */
async function markPushedAheadDone(records: ArchivedRecords, walDirectory: string, current: string): Promise<void> {
  try {
    const marked = await records.markDone(walDirectory, current);
    if (marked.length > 0) log.debug('marked done, pushed ahead of the archiver', { files: marked.length, last: marked.at(-1) });
  } catch (error) {
    // Not fatal: the archiver asks for those files itself, and their records (or storage) answer.
    log.info(`could not mark files pushed ahead as done: ${describeError(error)}`);
  }
}

function lookAheadEnabled(config: Config): boolean {
  return readUploadConcurrency(config) > 1 && readLookAheadLimit(config) > 0;
}

/**
 * The records kept about this archive in the spool, for a file in pg_wal
 * (next to archive_status/): look-ahead's, and the archive's verified identity.
 */
async function openRecords(config: Config, walDirectory: string): Promise<ArchivedRecords | undefined> {
  if (!existsSync(join(walDirectory, 'archive_status'))) return undefined;
  const archive = storageIdentity(config);
  // One records directory (and pusher) per archive, so switching archives never mixes them up.
  const directory = await spoolSubdirectory(spoolDirectory(config, dirname(walDirectory)), `archived/${crc32(archive).toString(16)}`);
  return directory ? new ArchivedRecords(directory, archive) : undefined;
}

/** Every failure is an ordinary one: a status above 125 would kill PostgreSQL's archiver. */
export function failureExitCode(): number {
  return ExitCode.failure;
}
