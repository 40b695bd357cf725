/** The part of lzma-native walship uses (the package ships no types). */
declare module 'lzma-native' {
  import type { Transform } from 'node:stream';

  export function createStream(coder: 'aloneDecoder', options?: { synchronous?: boolean; bufsize?: number; memlimit?: number }): Transform;
}
