/**
 * wal-prefetch <after> <segment_size> <prefetch_dir>: the background prefetcher
 * that wal-fetch starts (internal). It keeps the next WALG_DOWNLOAD_CONCURRENCY
 * segments downloaded and verified, and exits once recovery stops asking.
 */
import { readPreferredMethod, readDownloadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { runPrefetcher } from '../wal/prefetch.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [after, segmentSize, directory]: string[]): Promise<number> {
  await runPrefetcher({
    storage: storageSpecFrom(config),
    preferredMethod: readPreferredMethod(config),
    window: readDownloadConcurrency(config),
    directory: directory!,
    after: after!,
    segmentSize: Number(segmentSize),
  });
  return ExitCode.ok;
}
