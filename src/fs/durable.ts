/**
 * Durable, atomic file writes: data goes to a temp file in the destination's
 * directory, is fsynced, then renamed (or linked, to refuse replacing) into
 * place, and the directory is fsynced. A reader never sees a partial file
 * under the final name. A stopped writer removes its temp files; one killed
 * outright leaves a hidden temp file that sweepAbandonedTempFiles removes.
 * Small state files that may be lost in a crash are replaced quickly instead:
 * atomically, without the fsyncs.
 */
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { type FileHandle, link, lstat, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { AlreadyExistsError, describeError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isRunning } from '../util/process.ts';
import { ignoreMissing, isMissing, removeLeftover } from './missing.ts';
import { makeDirectories } from './directories.ts';

const TEMP_MARKER = '.walship-tmp-';

let tempCounter = 0;

/** A hidden name in `directory`, unique while this process lives: `.name.walship-tmp-<pid>-<n>`. */
function tempPathFor(path: string, directory = dirname(path)): string {
  return join(directory, `.${basename(path)}${TEMP_MARKER}${process.pid}-${(tempCounter++).toString(16)}`);
}

/** Temp files this process is writing, removed if it is told to stop. */
const tempFilesInFlight = new Set<string>();
let signalsHandled = false;

/**
 * Stopped by a signal (PostgreSQL's shutdown sends SIGTERM): remove unfinished
 * temp files, then die by the same signal, which is what PostgreSQL expects,
 * unless a command handles the signal itself (backup-push cleans up its upload).
 */
function removeTempFilesOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const temp of tempFilesInFlight) {
        try {
          unlinkSync(temp);
        } catch {
          // Gone already, or not removable: the process dies either way, and a later sweep finds the file.
        }
      }
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/**
 * Removes temp files left in `directory` by writers that were killed
 * outright (SIGKILL, a crash), so they cannot pile up.
 */
export async function sweepAbandonedTempFiles(directory: string, minimumAgeMs: number): Promise<void> {
  const pattern = new RegExp(`${TEMP_MARKER.replaceAll('.', '\\.')}(\\d+)-[0-9a-f]+$`);
  for (const name of (await readdir(directory).catch(ignoreMissing)) ?? []) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!pid || isRunning(pid)) continue;
    const path = join(directory, name);
    // Another sweeper may have removed it meanwhile.
    const stats = await lstat(path).catch(ignoreMissing);
    if (stats?.isFile() && Date.now() - stats.mtimeMs > minimumAgeMs) await removeLeftover(path);
  }
}

export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p that fsyncs every directory level it creates, so new entries survive a crash. */
export async function ensureDirectoryDurable(directory: string): Promise<void> {
  const firstCreated = await makeDirectories(directory, 0o750);
  if (firstCreated === undefined) return;
  for (let created = directory; ; created = dirname(created)) {
    await fsyncDirectory(dirname(created));
    if (created === firstCreated) break;
  }
}

export interface StagingOptions {
  mode?: number;
  /** Where the temp file goes: on the same file system as the final path; by default, its directory. */
  tempDirectory?: string;
}

/**
 * A file written and fsynced under a temp name, waiting to be committed to
 * its final name. Splitting the two lets callers commit several files and
 * then fsync their directories once.
 */
export class StagedFile {
  readonly path: string;
  private readonly temp: string;

  private constructor(path: string, temp: string) {
    this.path = path;
    this.temp = temp;
  }

  static async write(path: string, source: Readable, options: StagingOptions = {}): Promise<StagedFile> {
    return StagedFile.fill(path, (handle) => handle.writeFile(source), options);
  }

  /** Like write(), with the content written by `writeContent` into the open temp file. */
  static async fill(path: string, writeContent: (handle: FileHandle) => Promise<void>, options: StagingOptions = {}): Promise<StagedFile> {
    const temp = tempPathFor(path, options.tempDirectory);
    removeTempFilesOnSignals();
    tempFilesInFlight.add(temp);
    const staged = new StagedFile(path, temp);
    try {
      const handle = await open(temp, 'wx', options.mode ?? 0o600);
      try {
        await writeContent(handle);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await staged.discard();
      throw error;
    }
    return staged;
  }

  /**
   * Moves the file to its final name; with `createOnly`, fails with
   * AlreadyExistsError instead of replacing a file already there. The
   * directory still needs an fsync for the new entry to be durable.
   */
  async commit(createOnly = false): Promise<void> {
    if (!createOnly) {
      await rename(this.temp, this.path);
      return;
    }
    // link() fails with EEXIST atomically, where rename() would silently replace.
    try {
      await link(this.temp, this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`${this.path} already exists`);
      throw error;
    } finally {
      await this.discard();
    }
  }

  /** Removes the temp file; safe to call after commit or more than once. */
  async discard(): Promise<void> {
    await removeLeftover(this.temp);
    tempFilesInFlight.delete(this.temp);
  }
}

export interface AtomicWriteOptions {
  mode?: number;
  /** Refuse (AlreadyExistsError) instead of replacing an existing file. */
  createOnly?: boolean;
}

/**
 * Streams `source` into `path` atomically and durably. Resolves only once the
 * file and its directory entry are on stable storage.
 */
export async function writeFileAtomically(path: string, source: Readable, options: AtomicWriteOptions = {}): Promise<void> {
  await fillFileAtomically(path, (handle) => handle.writeFile(source), options);
}

/** Like writeFileAtomically(), with the content written by `writeContent` into the open temp file. */
export async function fillFileAtomically(path: string, writeContent: (handle: FileHandle) => Promise<void>, options: AtomicWriteOptions = {}): Promise<void> {
  const staged = await StagedFile.fill(path, writeContent, { mode: options.mode });
  try {
    await staged.commit(options.createOnly);
  } catch (error) {
    await staged.discard();
    throw error;
  }
  await fsyncDirectory(dirname(path));
}

/**
 * Replaces a small state file atomically but not durably (a temp file renamed
 * into place, no fsync): for the spool's records and notes, where a crash may
 * lose the newest version but a reader never sees a partial one.
 */
export async function replaceFileQuickly(path: string, content: string, mode = 0o600): Promise<void> {
  const temp = tempPathFor(path);
  try {
    await writeFile(temp, content, { mode, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await removeLeftover(temp);
    throw error;
  }
}

/** replaceFileQuickly for code that cannot wait: the zstd addon, loaded by a synchronous require(). */
export function replaceFileQuicklySync(path: string, content: Uint8Array, mode = 0o600): void {
  const temp = tempPathFor(path);
  try {
    writeFileSync(temp, content, { mode, flag: 'wx' });
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch (cleanupError) {
      if (!isMissing(cleanupError)) log.warning(`could not remove ${temp}: ${describeError(cleanupError)}`);
    }
    throw error;
  }
}

/**
 * Reads a state file that replaceFileQuickly writes: undefined when there is
 * none. State only ever saves work, so one that cannot be read is reported
 * and treated as absent.
 */
export async function readStateFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (!isMissing(error)) log.warning(`could not read ${path}, carrying on without it: ${describeError(error)}`);
    return undefined;
  }
}
