/**
 * wal-fetch <name> <destination>: restore_command.
 * 0 fetched, 74 not in the archive, anything else is an error: above 125 in
 * targeted recovery (PostgreSQL stops rather than promote early), 1 on a
 * standby (it retries later). After a segment is served, a background
 * prefetcher downloads the following ones.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Config } from '../config/config.ts';
import { readCompression, readPrefetchEnabled } from '../config/settings.ts';
import { describeError, ExitCode, NotFoundError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { recoveryMode } from '../postgres/recovery.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import { PrefetchArea, startPrefetcher } from '../wal/prefetch.ts';
import { spoolDirectory, spoolSubdirectory } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name, destination]: string[]): Promise<number> {
  const wal = requireWalFileName(name!);
  const compression = readCompression(config);
  // pg_rewind restores straight to pg_wal/<name> and wants exactly that file: no prefetching.
  const prefetching = readPrefetchEnabled(config) && wal.kind === 'segment' && basename(destination!) !== name;
  const area = prefetching ? await openPrefetchArea(config) : undefined;
  // Noted first, so a running prefetcher moves its window past this segment.
  await area?.noteRequested(name!);
  if (area && (await area.take(name!, destination!))) {
    log.debug('served from the prefetch area', { file: name });
    await continuePrefetching(area, name!, destination!, config);
    return ExitCode.ok;
  }
  const storage = await openStorage(config);
  try {
    await fetchWalFile({ storage, compression }, name!, destination!);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    // Asking for absent files is part of recovery (history files, the end of the archive).
    if (wal.kind === 'history') log.debug(error.message);
    else log.info(error.message);
    return ExitCode.notFound;
  }
  if (area) await continuePrefetching(area, name!, destination!, config);
  return ExitCode.ok;
}

async function openPrefetchArea(config: Config): Promise<PrefetchArea | undefined> {
  const directory = await spoolSubdirectory(spoolDirectory(config, process.cwd()), 'prefetch');
  return directory ? new PrefetchArea(directory) : undefined;
}

/** Prefetching only ever speeds recovery up: its failures are logged, never returned. */
async function continuePrefetching(area: PrefetchArea, name: string, destination: string, config: Config): Promise<void> {
  try {
    const segmentSize = (await stat(destination)).size;
    await startPrefetcher(area, name, segmentSize, config.filePath);
  } catch (error) {
    log.info(`prefetching not started: ${describeError(error)}`);
  }
}

export function failureExitCode(): number {
  return recoveryMode() === 'standby' ? ExitCode.failure : ExitCode.fatalRecoveryError;
}
