/**
 * What wal-fetch does for restore_command: serve the segment from the
 * prefetch area when the prefetcher has it, else download it, and keep the
 * prefetcher downloading the ones that follow. Only a file that is truly
 * absent is "not in the archive"; every other problem is an error.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ReadMethod } from '../config/settings.ts';
import { describeError, NotFoundError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import type { StorageSpec } from '../storage/spec.ts';
import { fetchWalFile } from './fetch.ts';
import { PrefetchArea, startPrefetcher } from './prefetch.ts';
import { PREFETCH_AREA, spoolOf, spoolSubdirectory } from './spool.ts';

export interface RestoringSettings {
  storage: StorageSpec;
  preferredMethod: ReadMethod;
  /** Download the following segments in the background (WALSHIP_PREFETCH). */
  prefetch: boolean;
  /** WALSHIP_SPOOL_DIR, when set. */
  spoolSetting: string | undefined;
  /** The config file, passed on to the prefetcher. */
  configPath: string | undefined;
}

export type RestoreOutcome = 'restored' | 'not-in-archive';

/** Restores WAL file `name` to `destination` (relative to the data directory, the working directory). */
export async function restoreWalFile(settings: RestoringSettings, name: string, destination: string): Promise<RestoreOutcome> {
  const wal = requireWalFileName(name);
  // pg_rewind restores straight to pg_wal/<name> and wants exactly that file: no prefetching.
  const prefetching = settings.prefetch && wal.kind === 'segment' && basename(destination) !== name;
  const area = prefetching ? await openPrefetchArea(settings) : undefined;
  // Noted first, so a running prefetcher moves its window past this segment.
  await area?.noteRequested(name);
  if (area && (await area.take(name, destination))) {
    log.debug('served from the prefetch area', { file: name });
    await continuePrefetching(area, name, destination, settings.configPath);
    return 'restored';
  }
  const storage = await openStorage(settings.storage);
  try {
    await fetchWalFile({ storage, preferredMethod: settings.preferredMethod }, name, destination);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    // Asking for absent files is part of recovery (history files, the end of the archive).
    if (wal.kind === 'history') log.debug(error.message);
    else log.info(error.message);
    return 'not-in-archive';
  }
  if (area) await continuePrefetching(area, name, destination, settings.configPath);
  return 'restored';
}

async function openPrefetchArea(settings: RestoringSettings): Promise<PrefetchArea | undefined> {
  const directory = await spoolSubdirectory(spoolOf(process.cwd(), settings.spoolSetting), PREFETCH_AREA);
  return directory ? new PrefetchArea(directory) : undefined;
}

/** Prefetching only ever speeds recovery up: its failures are logged, never returned. */
async function continuePrefetching(area: PrefetchArea, name: string, destination: string, configPath: string | undefined): Promise<void> {
  try {
    const segmentSize = (await stat(destination)).size;
    await startPrefetcher(area, name, segmentSize, configPath);
  } catch (error) {
    log.info(`prefetching not started: ${describeError(error)}`);
  }
}
