/**
 * mkdir -p without Node's `recursive: true`, which loops for ever (ignoring
 * signals) where mkdir answers ENOENT although the parent exists, as under
 * /proc. Here each missing level is made once, from the top, so a path that
 * cannot be made fails with mkdir's own error.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMissing } from './missing.ts';

/** The levels of `path` from the top, `/a`, `/a/b`, ..., `path`. */
function levels(path: string): string[] {
  const chain: string[] = [];
  for (let level = resolve(path); ; level = dirname(level)) {
    chain.unshift(level);
    if (dirname(level) === level) return chain;
  }
}

/** What mkdir says where a level is a file: EEXIST for the path itself, ENOTDIR for a level above it. */
function notADirectory(level: string, path: string): NodeJS.ErrnoException {
  const code = level === resolve(path) ? 'EEXIST' : 'ENOTDIR';
  return Object.assign(new Error(`${code}: ${level} is not a directory, mkdir '${path}'`), { code, path });
}

function isAlreadyThere(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EEXIST';
}

/** Makes `path` and the levels above it that are missing; resolves to the first level it made, if any (as mkdir -p). */
export async function makeDirectories(path: string, mode: number): Promise<string | undefined> {
  const chain = levels(path);
  let existing = chain.length - 1;
  for (; existing >= 0; existing--) {
    try {
      if (!(await stat(chain[existing]!)).isDirectory()) throw notADirectory(chain[existing]!, path);
      break;
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
  let firstMade: string | undefined;
  for (const level of chain.slice(existing + 1)) {
    try {
      await mkdir(level, { mode });
      firstMade ??= level;
    } catch (error) {
      if (!isAlreadyThere(error)) throw error;
    }
  }
  return firstMade;
}

/** makeDirectories, synchronously, for code that runs before anything is awaited (loading an addon). */
export function makeDirectoriesSync(path: string, mode: number): void {
  const chain = levels(path);
  let existing = chain.length - 1;
  for (; existing >= 0; existing--) {
    try {
      if (!statSync(chain[existing]!).isDirectory()) throw notADirectory(chain[existing]!, path);
      break;
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
  for (const level of chain.slice(existing + 1)) {
    try {
      mkdirSync(level, { mode });
    } catch (error) {
      if (!isAlreadyThere(error)) throw error;
    }
  }
}
