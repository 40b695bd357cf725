/**
 * What wal-fetch does for restore_command: serve the segment from the
 * prefetch area when the prefetcher has it, else download it (from a copy of
 * the archive when the main storage fails or lacks it), and keep the
 * prefetcher downloading the ones that follow. Only a file that is truly
 * absent from the main storage is "not in the archive"; every other problem
 * is an error.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { storageConfigFile } from '../config/copies.ts';
import type { ReadMethod } from '../config/settings.ts';
import { describeError, NotFoundError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import { type StorageSpec, storageSpecFrom } from '../storage/spec.ts';
import { fetchWalFile } from './fetch.ts';
import { openRecoveryArea, type PrefetchArea, recoveryKey, startPrefetcher } from './prefetch.ts';
import { createPrefetchRoot, isInsideDirectory, spoolOf } from './spool.ts';

export interface RestoringSettings {
  storage: StorageSpec;
  preferredMethod: ReadMethod;
  /** Download the following segments in the background (WALSHIP_PREFETCH). */
  prefetch: boolean;
  /** WALSHIP_SPOOL_DIR, when set. */
  spoolSetting: string | undefined;
  /** WALSHIP_PREFETCH_DIR, when set. */
  prefetchSetting: string | undefined;
  /** The config file, passed on to the prefetcher. */
  configPath: string | undefined;
  /** The config files of the copies (WALSHIP_COPIES): asked when the main storage fails or lacks the file. */
  copies: string[];
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
  await area?.waitForInFlight(name);
  if (area && (await area.take(name, destination))) {
    log.debug('served from the prefetch area', { file: name });
    await continuePrefetching(area, name, destination, settings.configPath);
    return 'restored';
  }
  try {
    await fetchWalFile({ storage: await openStorage(settings.storage), preferredMethod: settings.preferredMethod }, name, destination);
  } catch (error) {
    if (await fetchFromCopies(settings, name, destination, error)) return 'restored';
    if (!(error instanceof NotFoundError)) throw error;
    // Asking for absent files is part of recovery (history files, the end of the archive).
    if (wal.kind === 'history') log.debug(error.message);
    else log.info(error.message);
    return 'not-in-archive';
  }
  if (area) await continuePrefetching(area, name, destination, settings.configPath);
  return 'restored';
}

/**
 * This recovery's prefetch area, or undefined with the reason logged. The
 * first wal-fetch of a recovery says where its area is, in one line of the
 * server log; later ones say nothing. When no area can be had at all, each
 * call says why: it has nowhere to remember that it already did.
 */
async function openPrefetchArea(settings: RestoringSettings): Promise<PrefetchArea | undefined> {
  const dataDirectory = process.cwd();
  try {
    const recovery = await recoveryKey(dataDirectory);
    if (!recovery) {
      log.info(`prefetching is off: no postmaster.pid in ${dataDirectory}, so no server's recovery runs there`);
      return undefined;
    }
    if (settings.prefetchSetting && isInsideDirectory(settings.prefetchSetting, dataDirectory)) {
      log.warning(`prefetching is off: WALSHIP_PREFETCH_DIR=${settings.prefetchSetting} is inside the data directory, where pg_basebackup and pg_rewind would meet it; set it to a directory outside`);
      return undefined;
    }
    const root = await createPrefetchRoot(spoolOf(dataDirectory, settings.spoolSetting), settings.prefetchSetting);
    const { area, created } = await openRecoveryArea(root, settings.storage.identity, recovery);
    if (created) log.notice(`prefetching this recovery's WAL into ${area.directory}`);
    return area;
  } catch (error) {
    log.warning(`prefetching is off: ${describeError(error)}`);
    return undefined;
  }
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

/**
 * When the main storage failed or lacks the file: the copies, in order. A
 * copy serves only this cluster's WAL, the one whose system identifier both
 * its walship/archive.json and the cluster's own global/pg_control name
 * (restore_command runs in the data directory), so the archive of another
 * cluster is never read. Only the main storage's answer can be "not in the
 * archive": a copy may lag behind it, so its misses and failures change
 * nothing, and they are only logged.
 */
async function fetchFromCopies(settings: RestoringSettings, name: string, destination: string, primaryFailure: unknown): Promise<boolean> {
  if (settings.copies.length === 0) return false;
  const cluster = await clusterInWorkingDirectory();
  if (!cluster) {
    log.info(`not asking the copies for ${name}: no global/pg_control in ${process.cwd()} tells which cluster's WAL to take`);
    return false;
  }
  // Loaded only here: a wal-fetch the main storage answers needs none of it.
  const { readArchiveRecord } = await import('../archive/identity.ts');
  for (const path of settings.copies) {
    try {
      const storage = await openStorage(storageSpecFrom(storageConfigFile(path)));
      const record = await readArchiveRecord(storage);
      if (record?.systemIdentifier !== cluster) {
        log.info(`not asking copy ${path} for ${name}: it holds ${record ? `cluster ${record.systemIdentifier}'s archive` : 'no walship/archive.json'}, and this is cluster ${cluster}`);
        continue;
      }
      await fetchWalFile({ storage, preferredMethod: settings.preferredMethod }, name, destination);
      const why = primaryFailure instanceof NotFoundError ? 'the main storage does not hold it' : `the main storage failed: ${describeError(primaryFailure)}`;
      log.warning(`restored ${name} from copy ${path} (${storage.location}): ${why}`);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) log.debug(`copy ${path} does not hold ${name} either`);
      else log.info(`copy ${path} failed for ${name}: ${describeError(error)}`);
    }
  }
  return false;
}

/** The system identifier of the cluster whose data directory this is, if it is one. */
async function clusterInWorkingDirectory(): Promise<string | undefined> {
  const { parseControlFile } = await import('../postgres/control-file.ts');
  try {
    return parseControlFile(await readFile('global/pg_control')).systemIdentifier;
  } catch {
    return undefined; // not a data directory: nothing tells which cluster's WAL a copy may give
  }
}
