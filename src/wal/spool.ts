/**
 * walship's per-cluster working area: records of look-ahead uploads and the
 * prefetch area. It sits next to the data directory, never inside it, so
 * pg_basebackup and pg_rewind never copy it or race with it (WAL-G's
 * pg_wal/.wal-g breaks pg_rewind). WALSHIP_SPOOL_DIR moves it.
 */
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Config } from '../config/config.ts';
import { log } from '../log/logger.ts';

export function spoolDirectory(config: Config, dataDirectory: string): string {
  const configured = config.absolutePath('WALSHIP_SPOOL_DIR');
  if (configured) return configured;
  const data = resolve(dataDirectory);
  return join(dirname(data), `.walship-${basename(data)}`);
}

/** Creates (if needed) a private subdirectory of the spool; undefined when that is impossible. */
export async function spoolSubdirectory(spool: string, name: string): Promise<string | undefined> {
  const directory = join(spool, name);
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    return directory;
  } catch (error) {
    log.info(`spool directory ${directory} is unavailable (${(error as NodeJS.ErrnoException).code ?? error}); set WALSHIP_SPOOL_DIR to enable ${name}`);
    return undefined;
  }
}
