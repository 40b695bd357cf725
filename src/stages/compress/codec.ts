/**
 * Compression methods as stages. Each method owns a file extension, which
 * archive/layout.ts puts into object keys. walship writes zstd, brotli or
 * nothing (WALG_COMPRESSION_METHOD); it also reads WAL-G's lz4 and lzma.
 */
import { constants, createBrotliCompress, createBrotliDecompress } from 'node:zlib';
import type { CompressionMethod } from '../../config/settings.ts';
import { describeError, IntegrityError } from '../../errors.ts';
import type { TransformStage } from '../pipeline.ts';
import { createZstd, type Zstd } from './zstd.ts';

export interface CompressOptions {
  /** Several streams run at once: compress in libuv's thread pool, so they use every CPU. */
  inThreadPool?: boolean;
  /** false: zstd frames without their content checksum (XXH64), where a SHA-256 of the content checks the same bytes (dumps). */
  frameChecksum?: boolean;
}

/** A stored form walship reads. */
export interface Codec {
  /** The method's name, as WALG_COMPRESSION_METHOD spells it. */
  method: string;
  /** The object-name suffix, without the dot; '' for uncompressed objects. */
  extension: string;
  /** The decompression stage for the object `what` (named when it turns out damaged). */
  decompress(what: string): TransformStage | undefined;
}

/** A stored form walship also writes. */
export interface WritableCodec extends Codec {
  method: CompressionMethod;
  /** The compression stage; undefined when the method stores content as it is. */
  compress(level: number, options?: CompressOptions): TransformStage | undefined;
}

/** Pieces handed to the thread pool: each hand-off costs, so they are large. */
const THREAD_POOL_INPUT_CHUNK = 4 << 20;

function cannotDecompress(what: string, error: unknown): IntegrityError {
  return new IntegrityError(`${what} is corrupt: it cannot be decompressed (${describeError(error)})`);
}

/** zstd's stages, with its fast paths: reading a file itself, and decompressing straight to the consumer. */
export function zstdCodec(zstd: Zstd = createZstd()): WritableCodec {
  return {
    method: 'zstd',
    extension: 'zst',
    compress: (level, { inThreadPool = false, frameChecksum = true } = {}) => ({
      name: 'compress',
      inputChunk: inThreadPool ? THREAD_POOL_INPUT_CHUNK : undefined,
      transform: () => zstd.compressStream(level, { inThreadPool, frameChecksum }),
      step: inThreadPool ? undefined : () => zstd.compressStep(level, { frameChecksum }),
      readFile: (path) => zstd.compressFile(path, level, { inThreadPool }),
    }),
    decompress: (what) => ({
      name: 'decompress',
      transform: () => zstd.decompressStream(),
      into: (source, consume) => zstd.decompressInto(source, consume, what),
      describeFailure: (error) => cannotDecompress(what, error),
    }),
  };
}

const writable: Record<CompressionMethod, WritableCodec> = {
  zstd: zstdCodec(),
  brotli: {
    method: 'brotli',
    extension: 'br',
    // node:zlib runs brotli in the thread pool anyway.
    compress: (level, { inThreadPool = false } = {}) => ({
      name: 'compress',
      inputChunk: inThreadPool ? THREAD_POOL_INPUT_CHUNK : undefined,
      transform: () => createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level } }),
    }),
    decompress: (what) => ({
      name: 'decompress',
      transform: () => createBrotliDecompress(),
      describeFailure: (error) => cannotDecompress(what, error),
    }),
  },
  none: {
    method: 'none',
    extension: '',
    compress: () => undefined,
    decompress: () => undefined,
  },
};

/** WAL-G's other methods; their decoders load only when such an object is read. */
const readOnly: Codec[] = [
  {
    method: 'lz4',
    extension: 'lz4',
    decompress: (what) => ({
      name: 'decompress',
      transform: async () => new (await import('./lz4.ts')).Lz4FrameDecoder(),
      describeFailure: (error) => cannotDecompress(what, error),
    }),
  },
  {
    method: 'lzma',
    extension: 'lzma',
    decompress: (what) => ({
      name: 'decompress',
      transform: async () => (await import('./lzma.ts')).createLzmaAloneDecoder(),
      describeFailure: (error) => cannotDecompress(what, error),
    }),
  },
];

const codecs: Codec[] = [...Object.values(writable), ...readOnly];

export function codecFor(method: CompressionMethod): WritableCodec {
  return writable[method];
}

export function codecForExtension(extension: string): Codec | undefined {
  return codecs.find((codec) => codec.extension === extension);
}

/** Every codec, with `preferred` first: the order in which fetch looks for an object. */
export function codecsPreferring(preferred: string): Codec[] {
  return [...codecs.filter((codec) => codec.method === preferred), ...codecs.filter((codec) => codec.method !== preferred)];
}
