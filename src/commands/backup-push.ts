/** backup-push [data_directory]: take a base backup with pg_basebackup and stream it into storage. */
import { resolve } from 'node:path';
import { recordAttempt } from '../archive/attempts.ts';
import { ArchiveIdentity } from '../archive/identity.ts';
import { backupJson } from '../backup/list.ts';
import { pushBackup } from '../backup/push.ts';
import { readCompression, readTarSizeThreshold, readUploadConcurrency, readUserData } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { postgresClient } from '../postgres/basebackup.ts';
import { libpqEnvironment } from '../postgres/programs.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { interruptible } from '../util/process.ts';
import type { CommandContext } from './command.ts';

interface PushOptions {
  pgBasebackup?: string;
  permanent?: boolean;
  addUserData?: string;
  json?: boolean;
}

export async function run({ config }: CommandContext, [dataDirectory]: string[], options: PushOptions): Promise<number> {
  const compression = readCompression(config);
  const uploadConcurrency = readUploadConcurrency(config);
  const partSizeThreshold = readTarSizeThreshold(config);
  const client = postgresClient(libpqEnvironment(config), options.pgBasebackup);
  const spec = storageSpecFrom(config);
  const storage = await openStorage(spec);

  // Ctrl-C or a service manager's SIGTERM stops pg_basebackup and removes the partial upload.
  const push = () => interruptible((signal) =>
    pushBackup({
      storage,
      compression,
      uploadConcurrency,
      partSizeThreshold,
      client,
      dataDirectory: dataDirectory === undefined ? undefined : resolve(dataDirectory),
      identity: new ArchiveIdentity(storage, spec.prefixSetting),
      permanent: options.permanent ?? false,
      userData: readUserData(config, options.addUserData),
      signal,
    }),
  );
  const sentinel = await recordAttempt(storage, 'backup-push', push);
  if (options.json) process.stdout.write(`${JSON.stringify(backupJson(sentinel))}\n`);
  return ExitCode.ok;
}
