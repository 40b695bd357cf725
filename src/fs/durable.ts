/**
 * Durable, atomic file writes: data goes to a temp file in the destination's
 * directory, is fsynced, then renamed (or linked, to refuse replacing) into
 * place, and the directory is fsynced. A reader never sees a partial file
 * under the final name, and a crash leaves at most a hidden temp file.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { AlreadyExistsError } from '../errors.ts';

/** A hidden sibling name: `dir/.name.walship-tmp-<pid>-<random>`. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.walship-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
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
  const firstCreated = await mkdir(directory, { recursive: true, mode: 0o750 });
  if (firstCreated === undefined) return;
  for (let created = directory; ; created = dirname(created)) {
    await fsyncDirectory(dirname(created));
    if (created === firstCreated) break;
  }
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

  static async write(path: string, source: Readable, mode = 0o600): Promise<StagedFile> {
    const temp = tempPathFor(path);
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(source);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    await handle.close();
    return new StagedFile(path, temp);
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
    await unlink(this.temp).catch(() => undefined);
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
  const staged = await StagedFile.write(path, source, options.mode);
  try {
    await staged.commit(options.createOnly);
  } catch (error) {
    await staged.discard();
    throw error;
  }
  await fsyncDirectory(dirname(path));
}
