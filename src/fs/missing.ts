/** Telling "the file is not there" from every other file system error, which must never pass for it. */
import { unlink } from 'node:fs/promises';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';

/** The path does not exist (ENOENT), or one of its parents is not a directory (ENOTDIR). */
export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** For `.catch()` where a missing file is an answer: undefined for it, any other error rethrown. */
export function ignoreMissing(error: unknown): undefined {
  if (isMissing(error)) return undefined;
  throw error;
}

/**
 * Removes a file that may be gone already. For cleanup, which must not hide
 * the outcome it follows: a failure other than "missing" is logged, not thrown.
 */
export async function removeLeftover(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!isMissing(error)) log.warning(`could not remove ${path}: ${describeError(error)}`);
  }
}
