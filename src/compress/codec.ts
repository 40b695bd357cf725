/**
 * Compression methods as stream stages. Each method owns a file extension,
 * which archive/layout.ts puts into object keys.
 */
import type { Readable, Transform } from 'node:stream';
import { constants, createBrotliCompress, createBrotliDecompress } from 'node:zlib';
import type { CompressionMethod } from '../config/settings.ts';
import { createZstdCompressStage, createZstdDecompressStage, zstdCompressedFile, zstdDecompressInto } from './zstd.ts';

export interface Codec {
  method: CompressionMethod;
  /** The object-name suffix, without the dot; '' for uncompressed objects. */
  extension: string;
  /** A compression stage; `inThreadPool` when several streams run at once, so they can use every CPU. */
  compress(level: number, options?: { inThreadPool?: boolean }): Promise<Transform | undefined>;
  decompress(): Promise<Transform | undefined>;
  /** A faster way to compress a whole file, where the method has one (undefined: use compress()). */
  compressFile?(path: string, level: number): Promise<Readable | undefined>;
  /** A faster way to decompress into reused memory, where the method has one (false: use decompress()). */
  decompressInto?(source: AsyncIterable<Buffer>, consume: (piece: Buffer) => void, what: string): Promise<boolean>;
}

const codecs: Record<CompressionMethod, Codec> = {
  zstd: {
    method: 'zstd',
    extension: 'zst',
    compress: (level, options) => createZstdCompressStage(level, options),
    decompress: () => createZstdDecompressStage(),
    compressFile: (path, level) => zstdCompressedFile(path, level),
    decompressInto: (source, consume, what) => zstdDecompressInto(source, consume, what),
  },
  brotli: {
    method: 'brotli',
    extension: 'br',
    // node:zlib runs brotli in the thread pool anyway.
    compress: async (level) => createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level } }),
    decompress: async () => createBrotliDecompress(),
  },
  none: {
    method: 'none',
    extension: '',
    compress: async () => undefined,
    decompress: async () => undefined,
  },
};

/** Extensions other tools write that walship recognises but cannot read. */
export const UNREADABLE_EXTENSIONS = ['lz4', 'lzma'];

export function codecFor(method: CompressionMethod): Codec {
  return codecs[method];
}

export function codecForExtension(extension: string): Codec | undefined {
  return Object.values(codecs).find((codec) => codec.extension === extension);
}

/** Every codec, with `preferred` first: the order in which fetch looks for an object. */
export function codecsPreferring(preferred: CompressionMethod): Codec[] {
  return [codecs[preferred], ...Object.values(codecs).filter((codec) => codec.method !== preferred)];
}
