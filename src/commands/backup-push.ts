/** backup-push [data_directory]: take a base backup with pg_basebackup and stream it into storage. */
import { resolve } from 'node:path';
import { ArchiveIdentity } from '../archive/identity.ts';
import { readCompression, readTarSizeThreshold, readUploadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { backupJson } from '../backup/list.ts';
import { pushBackup } from '../backup/push.ts';
import { postgresClient } from '../postgres/basebackup.ts';
import { libpqEnvironment } from '../postgres/programs.ts';
import { openStorage, storagePrefixSetting } from '../storage/open.ts';
import type { CommandContext } from './command.ts';

interface PushOptions {
  pgBasebackup?: string;
  permanent?: boolean;
  addUserData?: string;
  json?: boolean;
}

/** --add-user-data takes JSON; anything that is not JSON is kept as a string. */
function parseUserData(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function run({ config }: CommandContext, [dataDirectory]: string[], options: PushOptions): Promise<number> {
  const compression = readCompression(config);
  const uploadConcurrency = readUploadConcurrency(config);
  const partSizeThreshold = readTarSizeThreshold(config);
  const client = postgresClient(libpqEnvironment(config), options.pgBasebackup);
  const storage = await openStorage(config);

  // Ctrl-C or a service manager's SIGTERM stops pg_basebackup and removes the partial upload.
  const interruption = new AbortController();
  const interrupt = () => interruption.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const { sentinel } = await pushBackup({
      storage,
      compression,
      uploadConcurrency,
      partSizeThreshold,
      client,
      dataDirectory: dataDirectory === undefined ? undefined : resolve(dataDirectory),
      identity: new ArchiveIdentity(storage, storagePrefixSetting(config)),
      permanent: options.permanent ?? false,
      userData: parseUserData(options.addUserData ?? config.get('WALG_SENTINEL_USER_DATA')),
      signal: interruption.signal,
    });
    if (options.json) process.stdout.write(`${JSON.stringify(backupJson(sentinel))}\n`);
    return ExitCode.ok;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}
