/**
 * Reading LZMA "alone" objects (`.lzma`, `xz --format=lzma`, one of WAL-G's
 * methods), streaming, with liblzma through lzma-native. It is the only
 * streaming reader of this format on npm (maintained ones decode whole
 * objects in memory); its prebuilt addon is loaded only when such an object
 * is read.
 */
import type { Transform } from 'node:stream';
import { describeError, WalshipError } from '../../errors.ts';

/** Output pieces: larger than lzma-native's 64 KiB default, so fewer hand-offs. */
const OUTPUT_CHUNK = 1 << 20;

type LzmaNative = typeof import('lzma-native');

let library: Promise<LzmaNative> | undefined;

function loadLibrary(): Promise<LzmaNative> {
  library ??= import('lzma-native').then(
    (module) => ((module as { default?: LzmaNative }).default ?? module) as LzmaNative,
    (error: unknown) => {
      library = undefined;
      throw new WalshipError(
        `reading .lzma objects needs walship's LZMA library, which could not be loaded (${describeError(error)}): set WALSHIP_CACHE_DIR to a private directory on a file system that allows executables`,
      );
    },
  );
  return library;
}

export async function createLzmaAloneDecoder(): Promise<Transform> {
  const lzma = await loadLibrary();
  return lzma.createStream('aloneDecoder', { bufsize: OUTPUT_CHUNK });
}
