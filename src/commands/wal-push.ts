/**
 * wal-push <path>: archive_command. Exit 0 only once the file is durable in
 * storage. Meanwhile the next `.ready` files are pushed ahead in parallel, so
 * the archiver's calls for them return at once.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readUploadConcurrency } from '../config/settings.ts';
import { describeError, ExitCode } from '../errors.ts';
import { log } from '../log/logger.ts';
import { openStorage } from '../storage/open.ts';
import { ArchivedRecords, pushAhead } from '../wal/lookahead.ts';
import { pushWalFile } from '../wal/push.ts';
import { spoolDirectory, spoolSubdirectory } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [path]: string[]): Promise<number> {
  const compression = readCompression(config);
  const preventOverwrite = readPreventWalOverwrite(config);
  const concurrency = readUploadConcurrency(config);
  const lookAheadLimit = concurrency > 1 ? readLookAheadLimit(config) : 0;
  const name = basename(path!);
  const walDirectory = dirname(resolve(path!));

  let records: ArchivedRecords | undefined;
  // Only a file in pg_wal (next to archive_status/) has a cluster to look ahead in.
  if (lookAheadLimit > 0 && existsSync(join(walDirectory, 'archive_status'))) {
    const directory = await spoolSubdirectory(spoolDirectory(config, dirname(walDirectory)), 'archived');
    records = directory ? new ArchivedRecords(directory) : undefined;
  }
  if (await records?.consume(name, path!)) {
    log.debug('already pushed ahead of the archiver', { file: name });
    return ExitCode.ok;
  }

  const storage = await openStorage(config);
  const push = (file: string) => pushWalFile({ storage, compression, preventOverwrite }, file);
  const ahead = records
    ? pushAhead({ walDirectory, foreground: name, records, concurrency: concurrency - 1, limit: lookAheadLimit, push }).catch((error: unknown) => {
        log.info(`look-ahead stopped: ${describeError(error)}`);
      })
    : undefined;
  try {
    await push(path!);
  } finally {
    // The exit code is the foreground file's alone; the look-ahead only has to finish.
    await ahead;
  }
  return ExitCode.ok;
}

/** Every failure is an ordinary one: a status above 125 would kill PostgreSQL's archiver. */
export function exitCodeFor(): number {
  return ExitCode.failure;
}
