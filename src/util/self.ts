/** How to run this walship again: the single executable itself, or node and the entry script when run from source. */
import { isSea } from 'node:sea';

export function walshipCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
}
