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

const TEMP_MARKER = '.walship-tmp-';

/** A hidden sibling name: `dir/.name.walship-tmp-<pid>-<random>`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`);
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
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', options.mode ?? 0o600);
  let committed = false;
  try {
    await handle.writeFile(source);
    await handle.sync();
    await handle.close();
    await commit(temp, path, options.createOnly ?? false);
    committed = true;
    await fsyncDirectory(dirname(path));
  } finally {
    if (!committed) {
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  }
}

async function commit(temp: string, path: string, createOnly: boolean): Promise<void> {
  if (!createOnly) {
    await rename(temp, path);
    return;
  }
  // link() fails with EEXIST atomically, where rename() would silently replace.
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`${path} already exists`);
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}
