/**
 * wal-push-ahead <pg_wal> <records_dir>: the detached look-ahead pusher that
 * wal-push starts (internal). It uploads waiting `.ready` files ahead of the
 * archiver and exits once none are left.
 */
import { ArchiveIdentity } from '../archive/identity.ts';
import { readCompression, readLookAheadLimit, readPreventWalOverwrite, readUploadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { openStorage, storageIdentity, storagePrefixSetting } from '../storage/open.ts';
import { ArchivedRecords, pusherConcurrency, runPusher } from '../wal/lookahead.ts';
import { pushWalFile } from '../wal/push.ts';
import type { CommandContext } from './command.ts';

/**
 * From this many waiting files on, the pusher on local storage compresses on
 * every CPU (in the thread pool) to catch up. Below it, keeping up, it
 * compresses on its main thread, which costs less CPU per file and so leaves
 * more to PostgreSQL. Over a network uploads wait on the network, not the
 * CPU, and main-thread compression also holds less memory.
 */
const CATCH_UP_BACKLOG = 8;

export async function run({ config }: CommandContext, [walDirectory, recordsDirectory]: string[]): Promise<number> {
  const compression = readCompression(config);
  const preventOverwrite = readPreventWalOverwrite(config);
  const storage = await openStorage(config);
  const records = new ArchivedRecords(recordsDirectory!, storageIdentity(config));
  const identity = new ArchiveIdentity(storage, storagePrefixSetting(config), records);
  const concurrency = pusherConcurrency(readUploadConcurrency(config), storage.isLocal);
  await runPusher({
    walDirectory: walDirectory!,
    records,
    concurrency,
    limit: readLookAheadLimit(config),
    push: (path, waiting) =>
      pushWalFile({ storage, compression, preventOverwrite, identity, compressInThreadPool: storage.isLocal && concurrency > 1 && waiting >= CATCH_UP_BACKLOG }, path),
  });
  return ExitCode.ok;
}
