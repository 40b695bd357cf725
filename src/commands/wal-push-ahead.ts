/**
 * wal-push-ahead <pg_wal> <records_dir>: the detached look-ahead pusher that
 * wal-push starts (internal). It uploads waiting `.ready` files ahead of the
 * archiver and exits once none are left.
 */
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readUploadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { openStorage, storageIdentity } from '../storage/open.ts';
import { ArchivedRecords, pusherConcurrency, runPusher } from '../wal/lookahead.ts';
import { pushWalFile } from '../wal/push.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [walDirectory, recordsDirectory]: string[]): Promise<number> {
  const compression = readCompression(config);
  const preventOverwrite = readPreventWalOverwrite(config);
  const storage = await openStorage(config);
  const concurrency = pusherConcurrency(readUploadConcurrency(config), storage.isLocal);
  await runPusher({
    walDirectory: walDirectory!,
    records: new ArchivedRecords(recordsDirectory!, storageIdentity(config)),
    concurrency,
    limit: readLookAheadLimit(config),
    // Locally compression is what limits, so it runs on every CPU; over a network the uploads wait on the
    // network, and main-thread compression needs less memory.
    push: (path) => pushWalFile({ storage, compression, preventOverwrite, compressInThreadPool: storage.isLocal && concurrency > 1 }, path),
  });
  return ExitCode.ok;
}
