/**
 * wal-fetch <name> <destination>: restore_command. 0 restored, 74 not in the
 * archive; any other failure is an error (its exit code is in the command
 * table: above 125 in targeted recovery, 1 on a standby).
 */
import { readCopyPaths } from '../config/copies.ts';
import { readPrefetchEnabled, readPreferredMethod } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { restoreWalFile } from '../wal/restoring.ts';
import { readPrefetchSetting, readSpoolSetting } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name, destination]: string[]): Promise<number> {
  const outcome = await restoreWalFile(
    {
      storage: storageSpecFrom(config),
      preferredMethod: readPreferredMethod(config),
      prefetch: readPrefetchEnabled(config),
      spoolSetting: readSpoolSetting(config),
      prefetchSetting: readPrefetchSetting(config),
      configPath: config.filePath,
      copies: readCopyPaths(config),
    },
    name!,
    destination!,
  );
  return outcome === 'restored' ? ExitCode.ok : ExitCode.notFound;
}
