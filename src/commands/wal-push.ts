/** wal-push <path>: archive_command. Exit 0 only once the file is durable in storage; every failure exits 1. */
import { readCopyPaths } from '../config/copies.ts';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readReadyRename, readUploadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { archiveWalFile } from '../wal/archiving.ts';
import { readSpoolSetting } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [path]: string[]): Promise<number> {
  await archiveWalFile(
    {
      storage: storageSpecFrom(config),
      compression: readCompression(config),
      preventOverwrite: readPreventWalOverwrite(config),
      lookAhead: readUploadConcurrency(config) > 1 && readLookAheadLimit(config) > 0,
      readyRename: readReadyRename(config),
      spoolSetting: readSpoolSetting(config),
      configPath: config.filePath,
      copies: readCopyPaths(config),
    },
    path!,
  );
  return ExitCode.ok;
}
