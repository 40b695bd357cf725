/**
 * The settings every command shares, read and validated up front so a bad
 * value fails before any work starts.
 */
import type { LogFormat, LogLevel } from '../log/logger.ts';
import type { Config } from './config.ts';

export const COMPRESSION_METHODS = ['zstd', 'brotli', 'none'] as const;
export type CompressionMethod = (typeof COMPRESSION_METHODS)[number];

/** What walship reads: its own methods and WAL-G's lz4 and lzma. */
export const READ_METHODS = [...COMPRESSION_METHODS, 'lz4', 'lzma'] as const;
export type ReadMethod = (typeof READ_METHODS)[number];

export interface CompressionSettings {
  method: CompressionMethod;
  level: number;
}

const levelRanges: Record<CompressionMethod, { min: number; max: number; fallback: number }> = {
  zstd: { min: -7, max: 22, fallback: 1 },
  brotli: { min: 0, max: 11, fallback: 3 },
  none: { min: 0, max: 0, fallback: 0 },
};

/** How writers compress (wal-push, backup-push). */
export function readCompression(config: Config): CompressionSettings {
  const named = config.enumOf('WALG_COMPRESSION_METHOD', READ_METHODS, 'zstd');
  const method = COMPRESSION_METHODS.find((writable) => writable === named);
  if (!method) throw config.invalid('WALG_COMPRESSION_METHOD', `one of ${COMPRESSION_METHODS.join(', ')} (walship reads WAL-G's ${named} objects, but does not write them)`);
  const level = method === 'none' ? 0 : config.integer('WALG_COMPRESSION_LEVEL', levelRanges[method]);
  return { method, level };
}

/**
 * The method readers look for first (wal-fetch, the prefetcher): any that
 * walship reads, so WAL-G's configuration, which may name lz4, restores as it is.
 */
export function readPreferredMethod(config: Config): ReadMethod {
  return config.enumOf('WALG_COMPRESSION_METHOD', READ_METHODS, 'zstd');
}

const LOG_LEVELS: Record<string, LogLevel> = {
  error: 'error',
  warning: 'warning',
  warn: 'warning',
  normal: 'info',
  info: 'info',
  devel: 'debug',
  debug: 'debug',
};

export function readLogging(config: Config): { level: LogLevel; format: LogFormat } {
  const rawLevel = config.get('WALG_LOG_LEVEL');
  const level = rawLevel === undefined ? 'warning' : LOG_LEVELS[rawLevel.toLowerCase()];
  if (!level) throw config.invalid('WALG_LOG_LEVEL', 'ERROR, WARNING, NORMAL or DEVEL');
  const format = config.enumOf('WALG_LOG_FORMAT', ['text', 'json'] as const, 'text');
  return { level, format };
}

export function readPreventWalOverwrite(config: Config): boolean {
  return config.boolean('WALG_PREVENT_WAL_OVERWRITE', true);
}

export function readUploadConcurrency(config: Config): number {
  return config.integer('WALG_UPLOAD_CONCURRENCY', { min: 1, max: 256, fallback: 16 });
}

/** wal-verify's windows for missing segments that may still arrive (as WAL-G reads them). */
export function readIntegrityWindows(config: Config): { delayed: number; uploading: number } {
  return { delayed: config.integer('WALG_INTEGRITY_MAX_DELAYED_WALS', { min: 0, max: 1 << 30, fallback: 0 }), uploading: readUploadConcurrency(config) };
}

export function readDownloadConcurrency(config: Config): number {
  return config.integer('WALG_DOWNLOAD_CONCURRENCY', { min: 1, max: 256, fallback: 10 });
}

/** backup-push closes a part at the first tar member boundary past this many bytes (WAL-G's default: 1 GiB). */
export function readTarSizeThreshold(config: Config): number {
  return config.integer('WALG_TAR_SIZE_THRESHOLD', { min: 1 << 20, max: 2 ** 40, fallback: 1 << 30 });
}

/** WAL-G's cap on files wal-push uploads ahead of the archiver in one call; 0 turns look-ahead off. */
export function readLookAheadLimit(config: Config): number {
  return config.integer('TOTAL_BG_UPLOADED_LIMIT', { min: 0, max: 1024, fallback: 32 });
}

/** Whether wal-push marks the files its pusher made durable as done in archive_status (WAL-G's PG_READY_RENAME). */
export function readReadyRename(config: Config): boolean {
  return config.boolean('PG_READY_RENAME', true);
}

/** Whether wal-fetch downloads the following segments in the background. */
export function readPrefetchEnabled(config: Config): boolean {
  return config.boolean('WALSHIP_PREFETCH', true);
}

/**
 * The user data stored with a backup or dump set: `option` (--add-user-data),
 * else WALG_SENTINEL_USER_DATA; JSON, or kept as text, as WAL-G keeps it.
 */
export function readUserData(config: Config, option: string | undefined): unknown {
  const text = option ?? config.get('WALG_SENTINEL_USER_DATA');
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: kept as text
  }
}
