/**
 * backup-fetch: parts are downloaded in parallel, each one
 *   storage.get -> verify SHA-256 -> decompress (stored-part.ts) -> extract into the destination
 * (every part is a complete tar archive). global/pg_control is put in place
 * only after every part is extracted and verified, so an interrupted restore
 * can never be started by mistake; a failed restore is removed. The result is
 * then checked against backup_manifest.
 *
 * WAL-G's backups restore too, as WAL-G's backup-fetch restores them: their
 * parts are found by listing, backup_label.tar after the others and
 * pg_control.tar last, member names lose their leading "/", and only the
 * files files_metadata.json lists are written when it lists any. They carry
 * no checksums of their parts and no backup_manifest: what could not be
 * verified is said.
 */
import { chmod, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { type BackupSentinel, listStoredParts, readFilesToRestore } from '../archive/backups.ts';
import { partExtension, partRole } from '../archive/layout.ts';
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
import { makeDirectories } from '../fs/directories.ts';
import { type ExtractOptions, extractTar } from './extract.ts';
import { openPart, type PartToOpen } from './stored-part.ts';

/** Written last: without it PostgreSQL refuses to start from a partial restore. */
const CONTROL_FILE = 'global/pg_control';
/** What WAL-G's backup_label.tar holds, replacing any copy in the other parts. */
const LABEL_FILES = new Set(['backup_label', 'tablespace_map']);
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

/** Groups of parts, each extracted in parallel once the group before it is done, with how their members are read. */
interface RestorePlan {
  groups: { parts: PartToOpen[]; extract: Pick<ExtractOptions, 'rootedNames' | 'restores'> }[];
  /** What checked the parts, for the summary. */
  verified: string;
}

export async function fetchBackup(settings: BackupFetchSettings, sentinel: BackupSentinel): Promise<void> {
  const { destination } = settings;
  if (sentinel.DeltaFrom !== undefined) {
    throw new WalshipError(`backup ${sentinel.BackupName} is a WAL-G delta backup (of ${sentinel.DeltaFrom}): walship restores full backups only; restore it with WAL-G, or choose a full backup`);
  }
  const plan = await planRestore(settings.storage, sentinel);
  const created = await prepareDestination(destination, settings.force);
  const progress = new Progress({ label: `backup-fetch ${sentinel.BackupName}`, total: sentinel.UncompressedSize });
  try {
    const extracted = await restoreParts(settings, sentinel, plan, progress);
    await syncDirectories(destination, extracted.directories);
    for (const { temporary, final } of extracted.deferred) {
      await rename(temporary, final);
      await fsyncDirectory(dirname(final));
    }
    if (extracted.deferred.length === 0) throw new WalshipError(`backup ${sentinel.BackupName} has no ${CONTROL_FILE}: it is damaged`);
    const verification = await verifyRestore(destination, sentinel, plan);
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

/** walship's parts as its sentinel lists them; WAL-G's as a listing finds them, in WAL-G's order. */
async function planRestore(storage: Storage, sentinel: BackupSentinel): Promise<RestorePlan> {
  if ((sentinel.Writer ?? 'walship') === 'walship') {
    return { groups: [{ parts: sentinel.Parts, extract: {} }], verified: "each part's SHA-256" };
  }
  const names = await listStoredParts(storage, sentinel.BackupName);
  // WAL-G records no checksums of its parts.
  const inRole = (role: ReturnType<typeof partRole>) => names.filter((name) => partRole(name) === role).map((name) => ({ Name: name }));
  const [data, label, control] = [inRole('data'), inRole('label'), inRole('control')];
  if (label.length === 0 && control.length === 0) {
    throw new IntegrityError(`backup ${sentinel.BackupName} has no pg_control.tar part in ${storage.location} (WAL-G's backup-fetch refuses it too): it is damaged`);
  }
  const files = await readFilesToRestore(storage, sentinel);
  const listed = (path: string) => files?.has(path) ?? true;
  const groups = [
    // WAL-G's backup_label.tar holds the backup's own backup_label: it wins over a stray one in the data.
    { parts: data, extract: { rootedNames: true, restores: (path: string) => listed(path) && !(label.length > 0 && LABEL_FILES.has(path)) } },
    { parts: label, extract: { rootedNames: true, restores: listed } },
    { parts: control, extract: { rootedNames: true, restores: listed } },
  ].filter((group) => group.parts.length > 0);
  const framed = [...new Set(names.map(partExtension))].flatMap((extension) => (extension === 'zst' ? ['zstd'] : extension === 'lz4' ? ['LZ4'] : []));
  const verified = framed.length > 0 ? `only the ${framed.join(' and ')} frames' own checksums` : 'nothing';
  return { groups, verified };
}

/** Downloads and extracts every part, `downloadConcurrency` at a time, group after group; the first failure stops the rest. */
async function restoreParts(settings: BackupFetchSettings, sentinel: BackupSentinel, plan: RestorePlan, progress: Progress): Promise<Extracted> {
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
  try {
    for (const group of plan.groups) {
      const inFlight = new InFlight(settings.downloadConcurrency);
      try {
        for (const part of group.parts) {
          await inFlight.room();
          if (stop) break;
          inFlight.add(
            restorePart(settings, sentinel, part, group.extract, progress, bodies).then((result) => {
              for (const directory of result.directories) extracted.directories.add(directory);
              extracted.deferred.push(...result.deferred);
            }, stopAll),
          );
        }
      } finally {
        await inFlight.settled();
      }
      if (stop) break;
    }
  } finally {
    settings.signal?.removeEventListener('abort', interrupted);
  }
  if (stop) throw stop.error;
  return extracted;
}

async function restorePart(settings: BackupFetchSettings, sentinel: BackupSentinel, part: PartToOpen, extract: ExtractOptions, progress: Progress, bodies: Set<Readable>) {
  const { key, body, stages } = await openPart(settings.storage, sentinel, part);
  bodies.add(body);
  try {
    return await extractTar(new Pipeline(body, stages).pieces(), settings.destination, {
      ...extract,
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

/** What was verified, for the summary; WAL-G's backups usually have no backup_manifest, and the summary says what went unchecked. */
async function verifyRestore(destination: string, sentinel: BackupSentinel, plan: RestorePlan): Promise<string> {
  if ((sentinel.Writer ?? 'walship') === 'walship') return verifyAgainstManifest(destination, sentinel);
  const hasManifest = await stat(join(destination, 'backup_manifest')).then(() => true, () => false);
  if (hasManifest) return `${await verifyAgainstManifest(destination, sentinel)}; a WAL-G backup: ${plan.verified} checked its parts`;
  const unchecked = `a WAL-G backup, not verified: WAL-G keeps no checksums of its parts and wrote no backup_manifest; ${plan.verified} checked the content`;
  log.warning(`backup ${sentinel.BackupName}: ${unchecked}`);
  return unchecked;
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
