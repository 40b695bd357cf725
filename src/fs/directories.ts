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

function isAlreadyThere(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EEXIST';
}

/** Makes `path` and the levels above it that are missing; resolves to the first level it made, if any (as mkdir -p). */
export async function makeDirectories(path: string, mode: number): Promise<string | undefined> {
  const chain = levels(path);
  let existing = chain.length - 1;
  for (; existing >= 0; existing--) {
    try {
      await stat(chain[existing]!);
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
      statSync(chain[existing]!);
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
