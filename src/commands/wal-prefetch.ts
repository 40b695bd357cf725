/**
 * wal-prefetch <after> <segment_size> <prefetch_dir>: the background prefetcher
 * that wal-fetch starts (internal). It keeps the next WALG_DOWNLOAD_CONCURRENCY
 * segments downloaded and verified, and exits once recovery stops asking.
 */
import { readCompression, readDownloadConcurrency } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import { PrefetchArea, prefetchConcurrency, runPrefetcher } from '../wal/prefetch.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [after, segmentSize, directory]: string[]): Promise<number> {
  const compression = readCompression(config);
  const window = readDownloadConcurrency(config);
  const storage = await openStorage(config);
  await runPrefetcher({
    area: new PrefetchArea(directory!),
    after: after!,
    segmentSize: Number(segmentSize),
    window,
    concurrency: prefetchConcurrency(window, storage.isLocal),
    fetch: (name, destination) => fetchWalFile({ storage, compression }, name, destination),
  });
  return ExitCode.ok;
}
