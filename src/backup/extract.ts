/**
 * Extracting a tar stream into a directory without ever writing outside it:
 * member names must be relative, without "..", symbolic links may only point
 * down inside the directory (relative targets without ".."), and files are
 * created exclusively without following links, so nothing planted in the
 * directory can redirect a write. Hard links and device files are refused.
 * Every file is fsynced before extraction returns.
 */
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WalshipError } from '../errors.ts';
import { InFlight } from '../util/concurrency.ts';
import { readTar, type TarEntry } from './tar.ts';

export class UnsafeArchiveError extends WalshipError {}

/** The member's path relative to the destination, or an UnsafeArchiveError. */
export function safeMemberPath(name: string): string {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  const refuse = (why: string) => new UnsafeArchiveError(`refusing tar member "${name}": ${why}`);
  if (name.startsWith('/')) throw refuse('absolute paths would write outside the destination');
  if (parts.includes('..')) throw refuse('".." would write outside the destination');
  if (name.includes('\0')) throw refuse('the name contains a NUL byte');
  if (parts.length === 0) throw refuse('the name is empty');
  return parts.join('/');
}

/** A symbolic link may point only down into the destination. */
export function checkLinkTarget(path: string, target: string): void {
  if (target === '' || target.startsWith('/') || target.split('/').includes('..')) {
    throw new UnsafeArchiveError(`refusing symbolic link "${path}" -> "${target}": it could point outside the destination`);
  }
}

export interface ExtractOptions {
  /** Member names start with "/" (WAL-G's: "/" and the path in the data directory): it is stripped, then checked as usual. */
  rootedNames?: boolean;
  /** Which regular files to write (by path); the others are read past. All of them without it. */
  restores?: (path: string) => boolean;
  /** Members written under a hidden temporary name, to be put in place by the caller at the end. */
  deferred?: ReadonlySet<string>;
  /** Called with the length of every content chunk written. */
  onData?: (bytes: number) => void;
}

export interface ExtractResult {
  files: number;
  /** Directories created, relative to the destination (for the final fsync). */
  directories: Set<string>;
  /** For each deferred member found: where it was written and where it belongs. */
  deferred: { temporary: string; final: string }[];
}

const FILE_MODE_MASK = 0o700;
const MAX_PENDING_SYNCS = 32;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export async function extractTar(source: AsyncIterable<Buffer>, destination: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const result: ExtractResult = { files: 0, directories: new Set(), deferred: [] };
  const ensureDirectory = async (relative: string) => {
    if (relative === '.' || result.directories.has(relative)) return;
    await mkdir(join(destination, relative), { recursive: true, mode: 0o700 });
    for (let directory = relative; directory !== '.'; directory = dirname(directory)) result.directories.add(directory);
  };
  let file: { handle: FileHandle; remaining: number } | undefined;
  // Files are fsynced and closed in the background while extraction goes on,
  // at most MAX_PENDING_SYNCS at a time, and all of them before returning.
  const syncs = new InFlight(MAX_PENDING_SYNCS);
  const closeFile = async () => {
    // A failed sync is thrown here, with the file still open for the cleanup below.
    await syncs.room();
    const { handle } = file!;
    file = undefined;
    syncs.add(handle.datasync().finally(() => handle.close()));
  };
  // Set while the content of a file that is not to be restored goes by.
  let skipping = false;
  try {
    for await (const event of readTar(source)) {
      if (event.kind === 'entry') {
        const name = options.rootedNames ? event.entry.path.replace(/^\/+/, '') : event.entry.path;
        // WAL-G's archives may name the data directory itself ("/").
        if (name === '' && options.rootedNames && event.entry.type === 'directory') continue;
        const path = safeMemberPath(name);
        skipping = event.entry.type === 'file' && options.restores !== undefined && !options.restores(path);
        if (skipping) continue;
        const opened = await createMember(event.entry, path, destination, ensureDirectory, options, result);
        if (opened) {
          file = { handle: opened, remaining: event.entry.size };
          result.files += 1;
          if (file.remaining === 0) await closeFile();
        }
      } else if (event.kind === 'data' && !skipping) {
        await file!.handle.write(event.raw);
        options.onData?.(event.raw.length);
        file!.remaining -= event.raw.length;
        if (file!.remaining === 0) await closeFile();
      }
    }
  } catch (error) {
    // Open only when extraction stopped midway: the partial restore is removed, and the error in flight is the one to report.
    await file?.handle.close().catch(() => undefined);
    await syncs.settled();
    throw error;
  }
  await syncs.done();
  return result;
}

/** Creates what `entry` describes; returns the open handle for a regular file. */
async function createMember(
  entry: TarEntry,
  path: string,
  destination: string,
  ensureDirectory: (relative: string) => Promise<void>,
  options: ExtractOptions,
  result: ExtractResult,
): Promise<FileHandle | undefined> {
  const target = join(destination, path);
  switch (entry.type) {
    case 'directory':
      await ensureDirectory(path);
      return undefined;
    case 'symlink':
      checkLinkTarget(path, entry.linkTarget);
      await ensureDirectory(dirname(path));
      await symlink(entry.linkTarget, target);
      return undefined;
    case 'file': {
      await ensureDirectory(dirname(path));
      let writeTo = target;
      if (options.deferred?.has(path)) {
        writeTo = join(dirname(target), `.${basename(target)}.walship-pending`);
        result.deferred.push({ temporary: writeTo, final: target });
      }
      const mode = (entry.mode & FILE_MODE_MASK) | 0o600;
      try {
        return await open(writeTo, CREATE_FLAGS, mode);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UnsafeArchiveError(`tar member "${path}" appears twice or is already in the destination`);
        throw error;
      }
    }
    default:
      throw new UnsafeArchiveError(`refusing tar member "${path}": ${entry.type === 'hardlink' ? 'hard links' : 'device files and FIFOs'} have no place in a PostgreSQL backup`);
  }
}
