/**
 * wal-push <path>: archive_command. Exit 0 only once the file is durable in
 * storage. A detached pusher uploads the next `.ready` files ahead of the
 * archiver, so its calls for them return at once.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Config } from '../config/config.ts';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readUploadConcurrency } from '../config/settings.ts';
import { describeError, ExitCode } from '../errors.ts';
import { log } from '../log/logger.ts';
import { openStorage, storageIdentity } from '../storage/open.ts';
import { ArchivedRecords, startPusher } from '../wal/lookahead.ts';
import { pushWalFile } from '../wal/push.ts';
import { spoolDirectory, spoolSubdirectory } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [path]: string[]): Promise<number> {
  const compression = readCompression(config);
  const preventOverwrite = readPreventWalOverwrite(config);
  const name = basename(path!);
  const walDirectory = dirname(resolve(path!));
  const records = await openRecords(config, walDirectory);

  if (records) {
    if (await records.consume(name, path!)) {
      log.debug('already pushed ahead of the archiver', { file: name });
      return ExitCode.ok;
    }
    await startPusher(records, walDirectory, config.filePath, name).catch((error: unknown) => {
      log.info(`look-ahead pusher not started: ${describeError(error)}`);
    });
    if (await records.awaitOtherUpload(name, path!)) {
      log.debug('pushed ahead of the archiver while it waited', { file: name });
      return ExitCode.ok;
    }
  }

  const storage = await openStorage(config);
  const claim = records?.claim(name);
  const claimed = await claim?.acquire();
  try {
    await pushWalFile({ storage, compression, preventOverwrite }, path!);
  } finally {
    if (claimed) await claim!.release();
  }
  return ExitCode.ok;
}

/** The look-ahead records, for a file in pg_wal (next to archive_status/) when look-ahead is on. */
async function openRecords(config: Config, walDirectory: string): Promise<ArchivedRecords | undefined> {
  const enabled = readUploadConcurrency(config) > 1 && readLookAheadLimit(config) > 0;
  if (!enabled || !existsSync(join(walDirectory, 'archive_status'))) return undefined;
  const archive = storageIdentity(config);
  // One records directory (and pusher) per archive, so switching archives never mixes them up.
  const directory = await spoolSubdirectory(spoolDirectory(config, dirname(walDirectory)), `archived/${crc32(archive).toString(16)}`);
  return directory ? new ArchivedRecords(directory, archive) : undefined;
}

/** Every failure is an ordinary one: a status above 125 would kill PostgreSQL's archiver. */
export function failureExitCode(): number {
  return ExitCode.failure;
}
