/**
 * backup-fetch: parts are downloaded in parallel, each one
 *   storage.get -> verify SHA-256 -> decompress (stored-part.ts) -> extract into the destination
 * (every part is a complete tar archive). global/pg_control is put in place
 * only after every part is extracted and verified, so an interrupted restore
 * can never be started by mistake; a failed restore is removed. The result is
 * then checked against backup_manifest.
 */
import { chmod, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { BackupPart, BackupSentinel } from '../archive/backups.ts';
import { describeError, IntegrityError, WalshipError } from '../errors.ts';
import { fsyncDirectory } from '../fs/durable.ts';
import { isMissing } from '../fs/missing.ts';
import { log } from '../log/logger.ts';
import { checkFilesAgainstManifest } from '../postgres/backup-manifest.ts';
import { findPostgresProgram, runCaptured } from '../postgres/programs.ts';
import { Progress, transferSummary } from '../progress/progress.ts';
import { Pipeline } from '../stages/pipeline.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently, InFlight } from '../util/concurrency.ts';
import { extractTar } from './extract.ts';
import { openPart } from './stored-part.ts';
import { makeDirectories } from '../fs/directories.ts';

/** Written last: without it PostgreSQL refuses to start from a partial restore. */
const CONTROL_FILE = 'global/pg_control';
const FSYNC_CONCURRENCY = 16;
const INTERRUPTED = 'backup-fetch was interrupted: the partial restore is removed';

export interface BackupFetchSettings {
  storage: Storage;
  downloadConcurrency: number;
  destination: string;
  /** Empty a non-empty destination first. */
  force: boolean;
  /** Aborting stops the downloads and removes the partial restore (Ctrl-C, SIGTERM). */
  signal?: AbortSignal;
}

export async function fetchBackup(settings: BackupFetchSettings, sentinel: BackupSentinel): Promise<void> {
  const { destination } = settings;
  const created = await prepareDestination(destination, settings.force);
  const progress = new Progress({ label: `backup-fetch ${sentinel.BackupName}`, total: sentinel.UncompressedSize });
  try {
    const extracted = await restoreParts(settings, sentinel, progress);
    await syncDirectories(destination, extracted.directories);
    for (const { temporary, final } of extracted.deferred) {
      await rename(temporary, final);
      await fsyncDirectory(dirname(final));
    }
    if (extracted.deferred.length === 0) throw new WalshipError(`backup ${sentinel.BackupName} has no ${CONTROL_FILE}: it is damaged`);
    const verification = await verifyAgainstManifest(destination, sentinel);
    if (settings.signal?.aborted) throw new WalshipError(INTERRUPTED);
    await chmod(destination, 0o700);
    progress.finish(`backup-fetch: ${sentinel.BackupName} into ${destination}: ${transferSummary(sentinel.UncompressedSize, sentinel.CompressedSize, progress.elapsedMs)}; ${verification}`);
  } catch (error) {
    progress.finish();
    await removePartialRestore(destination, created);
    throw error;
  }
}

/** Creates the destination (mode 0700), or checks that it is empty (or empties it when forced). */
async function prepareDestination(destination: string, force: boolean): Promise<boolean> {
  const stats = await stat(destination).catch((error: unknown) => {
    if (isMissing(error)) return undefined;
    throw new WalshipError(`cannot use ${destination}: ${describeError(error)}`);
  });
  if (!stats) {
    await makeDirectories(destination, 0o700).catch((error: unknown) => {
      throw new WalshipError(`cannot create ${destination}: ${describeError(error)}; run backup-fetch as a user who may write there, such as the PostgreSQL OS user`);
    });
    await fsyncDirectory(dirname(destination));
    return true;
  }
  if (!stats.isDirectory()) throw new WalshipError(`${destination} exists and is not a directory: choose another destination`);
  const entries = await readdir(destination);
  if (entries.length > 0) {
    if (!force) {
      throw new WalshipError(`${destination} is not empty: restore into an empty or new directory, or pass --force to delete its contents first`);
    }
    if (entries.includes('postmaster.pid')) {
      throw new WalshipError(`${destination} holds postmaster.pid: a server may be running there; stop it (or remove a stale postmaster.pid) before restoring over it`);
    }
    log.warning('deleting the contents of the destination (--force)', { destination });
    await emptyDirectory(destination);
  }
  return false;
}

async function emptyDirectory(directory: string): Promise<void> {
  for (const entry of await readdir(directory)) await rm(join(directory, entry), { recursive: true, force: true });
}

async function removePartialRestore(destination: string, created: boolean): Promise<void> {
  try {
    if (created) await rm(destination, { recursive: true, force: true });
    else await emptyDirectory(destination);
  } catch (error) {
    log.warning(`could not remove the partial restore: delete ${destination} before using it`, { reason: describeError(error) });
  }
}

interface Extracted {
  directories: Set<string>;
  deferred: { temporary: string; final: string }[];
}

/** Downloads and extracts every part, `downloadConcurrency` at a time; the first failure stops the rest. */
async function restoreParts(settings: BackupFetchSettings, sentinel: BackupSentinel, progress: Progress): Promise<Extracted> {
  const extracted: Extracted = { directories: new Set(), deferred: [] };
  const bodies = new Set<Readable>();
  // Why the restore stops: the first failure, or an interruption.
  let stop: { error: unknown } | undefined;
  const stopAll = (error: unknown) => {
    stop ??= { error };
    for (const body of bodies) body.destroy();
  };
  const interrupted = () => stopAll(new WalshipError(INTERRUPTED));
  settings.signal?.addEventListener('abort', interrupted, { once: true });
  const inFlight = new InFlight(settings.downloadConcurrency);
  try {
    for (const part of sentinel.Parts) {
      await inFlight.room();
      if (stop) break;
      inFlight.add(
        restorePart(settings, sentinel, part, progress, bodies).then((result) => {
          for (const directory of result.directories) extracted.directories.add(directory);
          extracted.deferred.push(...result.deferred);
        }, stopAll),
      );
    }
  } finally {
    await inFlight.settled();
    settings.signal?.removeEventListener('abort', interrupted);
  }
  if (stop) throw stop.error;
  return extracted;
}

async function restorePart(settings: BackupFetchSettings, sentinel: BackupSentinel, part: BackupPart, progress: Progress, bodies: Set<Readable>) {
  const { key, body, stages } = await openPart(settings.storage, sentinel, part);
  bodies.add(body);
  try {
    return await extractTar(new Pipeline(body, stages).pieces(), settings.destination, {
      deferred: new Set([CONTROL_FILE]),
      onData: (bytes) => progress.advance(bytes),
    });
  } catch (error) {
    if (error instanceof WalshipError && !error.message.includes(key)) throw new WalshipError(`${key}: ${error.message}`, { cause: error });
    throw error;
  } finally {
    bodies.delete(body);
  }
}

/** Makes every created directory entry durable. */
async function syncDirectories(destination: string, directories: Set<string>): Promise<void> {
  const paths = [destination, ...[...directories].map((directory) => join(destination, directory))];
  await forEachConcurrently(paths, FSYNC_CONCURRENCY, fsyncDirectory);
}

/** pg_verifybackup when it is installed, else presence and sizes of the manifest's files. */
async function verifyAgainstManifest(destination: string, sentinel: BackupSentinel): Promise<string> {
  const major = Math.floor(sentinel.PgVersion / 10000);
  const verifier = findPostgresProgram('pg_verifybackup', major);
  if (verifier) {
    const result = await runCaptured(verifier, ['--quiet', destination], process.env);
    if (result.code !== 0) {
      const detail = result.stderr.trim().split('\n').slice(0, 5).join(' / ');
      throw new IntegrityError(`pg_verifybackup found problems in the restored files: ${detail}`);
    }
    return 'verified with pg_verifybackup';
  }
  const manifest = await readFile(join(destination, 'backup_manifest')).catch((error: unknown) => {
    if (isMissing(error)) throw new IntegrityError(`backup ${sentinel.BackupName} has no backup_manifest: it is damaged`);
    throw new WalshipError(`cannot read the restored backup_manifest: ${describeError(error)}`);
  });
  const problems = await checkFilesAgainstManifest(destination, manifest);
  if (problems.length > 0) throw new IntegrityError(`the restored files do not match backup_manifest: ${problems.join('; ')}`);
  return 'checked file sizes against backup_manifest (pg_verifybackup is not installed)';
}
