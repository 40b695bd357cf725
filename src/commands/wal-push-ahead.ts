/**
 * wal-push-ahead <pg_wal> <records_dir>: the detached look-ahead pusher that
 * wal-push starts (internal). It uploads waiting `.ready` files ahead of the
 * archiver and exits once none are left.
 */
import { readCopyPaths } from '../config/copies.ts';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readUploadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { runPusher } from '../wal/lookahead/pusher.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [walDirectory, recordsDirectory]: string[]): Promise<number> {
  await runPusher({
    storage: storageSpecFrom(config),
    compression: readCompression(config),
    preventOverwrite: readPreventWalOverwrite(config),
    uploadConcurrency: readUploadConcurrency(config),
    limit: readLookAheadLimit(config),
    walDirectory: walDirectory!,
    recordsDirectory: recordsDirectory!,
    copies: readCopyPaths(config),
  });
  return ExitCode.ok;
}
