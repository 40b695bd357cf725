/**
 * zstd stream stages. zstd-napi (native) is preferred; when
 * its addon cannot be loaded (for example a noexec cache directory) node:zlib's
 * zstd takes over. Both write standard frames with a content checksum, so
 * either can read what the other wrote.
 */
import type { Transform } from 'node:stream';
import { constants, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { log } from '../log/logger.ts';

type ZstdNapi = typeof import('zstd-napi');

let native: Promise<ZstdNapi | undefined> | undefined;

function loadNative(): Promise<ZstdNapi | undefined> {
  native ??= import('zstd-napi').then(
    (module) => ((module as { default?: ZstdNapi }).default ?? module) as ZstdNapi,
    (error: unknown) => {
      log.debug('zstd-napi unavailable, using node:zlib zstd', { reason: String((error as Error)?.message ?? error) });
      return undefined;
    },
  );
  return native;
}

export async function createZstdCompressStage(level: number): Promise<Transform> {
  const zstd = await loadNative();
  // Single-threaded per stream: parallelism comes from several files in flight.
  if (zstd) return new zstd.CompressStream({ compressionLevel: level, checksumFlag: true });
  return createZstdCompress({
    params: {
      [constants.ZSTD_c_compressionLevel]: level,
      [constants.ZSTD_c_checksumFlag]: 1,
    },
  });
}

export async function createZstdDecompressStage(): Promise<Transform> {
  const zstd = await loadNative();
  if (zstd) return new zstd.DecompressStream();
  return createZstdDecompress();
}

/** Which implementation is in use, for diagnostics and tests. */
export async function zstdImplementation(): Promise<'zstd-napi' | 'node:zlib'> {
  return (await loadNative()) ? 'zstd-napi' : 'node:zlib';
}
