/**
 * zstd: streams and the two fast paths. zstd-napi (native) is preferred;
 * when its addon cannot be loaded (for example a noexec cache directory)
 * node:zlib's zstd takes over.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { constants, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { IntegrityError } from '../../errors.ts';
import { log } from '../../log/logger.ts';
import { type Step, stepStream } from '../pipeline.ts';

type ZstdNapi = typeof import('zstd-napi');
type ZstdBinding = typeof import('zstd-napi/binding.js');

/** zstd-napi's stream classes and the low-level binding its fast paths use. */
export interface NativeZstd {
  streams: ZstdNapi;
  binding: ZstdBinding;
}

let native: Promise<NativeZstd | undefined> | undefined;

/** A CommonJS module's exports, whichever way it was imported (Node's ESM loader or the bundle). */
function exportsOf<T>(module: unknown): T {
  return ((module as { default?: T }).default ?? module) as T;
}

function loadNative(): Promise<NativeZstd | undefined> {
  native ??= Promise.all([import('zstd-napi'), import('zstd-napi/binding.js')]).then(
    ([streams, binding]) => ({ streams: exportsOf<ZstdNapi>(streams), binding: exportsOf<ZstdBinding>(binding) }),
    (error: unknown) => {
      log.debug('zstd-napi unavailable, using node:zlib zstd', { reason: String((error as Error)?.message ?? error) });
      return undefined;
    },
  );
  return native;
}

/** node:zlib's output piece: larger than its 16 KiB default, so each thread-pool job does more work. */
const THREAD_POOL_CHUNK = 1 << 20;
/** Bytes read from a file per step; one buffer, reused. */
const FILE_CHUNK = 1 << 18;
/** Bytes read from a file per thread-pool job, into one of two reused buffers. */
const THREAD_POOL_FILE_CHUNK = 1 << 20;
/** Compressed output is handed on in pieces of about this size. */
const OUTPUT_CHUNK = 1 << 20;
/**
 * A stream's compressed output, in smaller pieces: with 1 MiB copies, the
 * peak RSS of a 1 GiB dump-push (test/integration/dump-memory.test.ts) was
 * 117 to 144 MB, with 256 KiB 81 MB.
 */
const STREAM_OUTPUT_CHUNK = 256 << 10;

export interface Zstd {
  /**
   * A compression stream. zstd-napi compresses on the main thread, which is
   * fastest for one stream alone; `inThreadPool` picks node:zlib's, which
   * compresses in libuv's thread pool, so several streams in one process
   * compress on several CPUs at once.
   */
  compressStream(level: number, options: { inThreadPool: boolean; frameChecksum?: boolean }): Promise<Transform>;
  /** zstd-napi's compression on the main thread as a Step (see compressStream), or undefined without the native addon. */
  compressStep(level: number, options?: { frameChecksum?: boolean }): Promise<Step | undefined>;
  decompressStream(): Promise<Transform>;
  /**
   * A file's content as zstd frames, read through reused buffers: no fresh
   * memory per chunk. On the main thread (zstd-napi; undefined without the
   * native addon) it reads and compresses synchronously, with no stream
   * machinery, which is most of what a 16 MiB WAL segment costs on
   * archive_command's hot path. `inThreadPool` (see compressStream) feeds
   * node:zlib's compression.
   */
  compressFile(path: string, level: number, options?: { inThreadPool: boolean }): Promise<Readable | undefined>;
  /**
   * Decompresses zstd frames from `source`, handing each decompressed piece to
   * `consume` as a view of one reused buffer (valid only during the call);
   * damaged data fails with IntegrityError naming `what`.
   * Resolves false, having read nothing, without the native addon.
   */
  decompressInto(source: AsyncIterable<Buffer>, consume: (piece: Buffer) => void, what: string): Promise<boolean>;
  /** Which implementation is in use, for diagnostics and tests. */
  implementation(): Promise<'zstd-napi' | 'node:zlib'>;
}

/**
 * zstd through zstd-napi when `load` provides it, else through node:zlib's
 * zstd. Both write standard frames, with a content checksum unless told
 * otherwise (`frameChecksum: false`), so either reads what the other wrote.
 */
export function createZstd(load: () => Promise<NativeZstd | undefined> = loadNative): Zstd {
  return {
    async compressStream(level, { inThreadPool, frameChecksum = true }) {
      const zstd = inThreadPool ? undefined : await load();
      if (zstd) return stepStream(new FrameWriter(zstd.binding, level, STREAM_OUTPUT_CHUNK, frameChecksum));
      return threadPoolCompression(level, frameChecksum);
    },
    async compressStep(level, { frameChecksum = true } = {}) {
      const zstd = await load();
      return zstd && new FrameWriter(zstd.binding, level, STREAM_OUTPUT_CHUNK, frameChecksum);
    },
    async decompressStream() {
      const zstd = await load();
      return zstd ? new DecompressTransform(zstd.binding, STREAM_OUTPUT_CHUNK) : new FrameByFrameDecompress();
    },
    async compressFile(path, level, { inThreadPool } = { inThreadPool: false }) {
      if (inThreadPool) return threadPoolCompressedFile(path, level);
      const zstd = await load();
      return zstd && compressedFile(zstd.binding, path, level);
    },
    async decompressInto(source, consume, what) {
      const zstd = await load();
      if (!zstd) return false;
      await decompressInto(zstd.binding, source, consume, what);
      return true;
    },
    async implementation() {
      return (await load()) ? 'zstd-napi' : 'node:zlib';
    },
  };
}

const NO_INPUT = Buffer.alloc(0);

/**
 * zstd frames written through one reused output buffer, handed on as copies
 * of about `pieceSize` bytes: zstd-napi's own stream allocates a fresh 128 KiB
 * buffer per call and passes on a view of it, so a highly compressible stream
 * (a dump) leaves behind a 128 KiB allocation for every few KiB of output.
 */
class FrameWriter implements Step {
  private readonly context: InstanceType<ZstdBinding['CCtx']>;
  private readonly binding: ZstdBinding;
  private readonly output: Buffer;
  private readonly pieceSize: number;
  private filled = 0;

  constructor(binding: ZstdBinding, level: number, pieceSize: number, frameChecksum = true) {
    this.binding = binding;
    this.pieceSize = pieceSize;
    this.context = new binding.CCtx();
    this.context.setParameter(binding.CParameter.compressionLevel, level);
    this.context.setParameter(binding.CParameter.checksumFlag, frameChecksum ? 1 : 0);
    this.output = Buffer.allocUnsafe(pieceSize + binding.cStreamOutSize());
  }

  write(input: Buffer): Buffer[] {
    return this.compress(input, false);
  }

  end(): Buffer[] {
    return this.compress(NO_INPUT, true);
  }

  /** Compresses `input`; with `end`, also ends the frame. Returns the output pieces ready to hand on. */
  compress(input: Buffer, end: boolean): Buffer[] {
    const ready: Buffer[] = [];
    const directive = end ? this.binding.EndDirective.end : this.binding.EndDirective.continue;
    for (let pending = input; ; ) {
      const [remaining, produced, consumed] = this.context.compressStream2(this.output.subarray(this.filled), pending, directive);
      this.filled += produced;
      pending = pending.subarray(consumed);
      if (this.filled >= this.pieceSize || (end && remaining === 0 && this.filled > 0)) {
        ready.push(Buffer.from(this.output.subarray(0, this.filled))); // a copy: `output` is reused
        this.filled = 0;
      }
      if (end ? remaining === 0 : pending.length === 0) return ready;
    }
  }
}

/**
 * zstd frames decompressed into fresh buffers of `pieceSize` bytes, each one
 * filled before it is handed on, and no faster than the reader takes them.
 * zstd-napi's own stream hands on a fresh 128 KiB buffer per call, all of a
 * chunk's output at once: a 64 KiB chunk of a dump (67x compressible) became
 * 4 MiB in flight, whatever the pace of the pg_restore it was written to.
 * It takes its input itself (_write) rather than through Transform's
 * _transform, whose next chunk waits on a _read that may already have come.
 */
class DecompressTransform extends Transform {
  private readonly context: InstanceType<ZstdBinding['DCtx']>;
  private readonly pieceSize: number;
  private output: Buffer;
  private filled = 0;
  private inFrame = false;
  /** The input being decompressed, and the callback that asks for the next. */
  private waiting: { input: Buffer; callback: (error?: Error | null) => void } | undefined;
  /** The reader refused the last piece: nothing more until it reads (_read). */
  private readerFull = false;
  private decompressing = false;

  constructor(binding: ZstdBinding, pieceSize: number) {
    super();
    this.context = new binding.DCtx();
    this.pieceSize = pieceSize;
    this.output = Buffer.allocUnsafe(pieceSize);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.waiting = { input: chunk, callback };
    this.decompressWaiting();
  }

  override _read(): void {
    this.readerFull = false;
    // Called from within a push below, the loop there goes on by itself.
    if (this.waiting && !this.decompressing) this.decompressWaiting();
  }

  override _flush(callback: TransformCallback): void {
    if (this.inFrame) return callback(new Error('it ends in the middle of a zstd frame'));
    if (this.filled > 0) this.push(this.output.subarray(0, this.filled));
    callback();
  }

  private decompressWaiting(): void {
    const waiting = this.waiting!;
    let usedUp;
    this.decompressing = true;
    try {
      usedUp = this.decompress(waiting);
    } catch (error) {
      usedUp = error as Error;
    } finally {
      this.decompressing = false;
    }
    if (usedUp === false) return;
    this.waiting = undefined;
    waiting.callback(usedUp === true ? null : usedUp);
  }

  /** Decompresses `waiting.input`, handing on each full piece: true once it is used up, false when the reader has enough for now. */
  private decompress(waiting: { input: Buffer }): boolean {
    for (;;) {
      if (this.readerFull) return false;
      const [remaining, produced, consumed] = this.context.decompressStream(this.output.subarray(this.filled), waiting.input);
      this.filled += produced;
      // A call that moved nothing says nothing of the frame: between frames, zstd asks for the next header
      // (non-zero) even though none is coming. That call comes whenever a piece fills just as a frame ends.
      if (consumed > 0 || produced > 0) this.inFrame = remaining !== 0;
      waiting.input = waiting.input.subarray(consumed);
      if (this.filled === this.pieceSize) {
        const full = this.output;
        this.output = Buffer.allocUnsafe(this.pieceSize);
        this.filled = 0;
        this.readerFull = !this.push(full);
      } else if (waiting.input.length === 0) {
        // Room left in the piece and no input left: all of this input's output is out.
        return true;
      }
    }
  }
}

/**
 * node:zlib's zstd decompressor for any number of frames in a row. On its
 * own it stops at the end of the first frame and drops the rest without an
 * error (Node 24.21: three concatenated frames give the first one's bytes;
 * a skippable frame first gives nothing), where zstd's format, `cat a.zst
 * b.zst` and pzstd have frames follow one another. So the input is cut at
 * each frame's end, found from the frame's headers, and each frame goes to a
 * decompressor of its own.
 */
class FrameByFrameDecompress extends Transform {
  private readonly frames = new ZstdFrameEnds();
  /** The current frame's decompressor, once its first byte has come. */
  private frame: Transform | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.decompress(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.frames.inFrame ? new Error('it ends in the middle of a zstd frame') : null);
  }

  override _read(size: number): void {
    this.frame?.resume();
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.frame?.destroy();
    callback(error);
  }

  private async decompress(chunk: Buffer): Promise<void> {
    let start = 0;
    for (const end of this.frames.scan(chunk)) {
      await this.feed(chunk.subarray(start, end));
      // Still this.frame while it drains, so that our reader resumes it (_read).
      this.frame!.end();
      await finished(this.frame!);
      this.frame = undefined;
      start = end;
    }
    if (start < chunk.length) await this.feed(chunk.subarray(start));
  }

  /** Writes `bytes` of the current frame; resolves once its decompressor has taken them, which waits on our reader. */
  private feed(bytes: Buffer): Promise<void> {
    if (!this.frame) {
      const frame = createZstdDecompress();
      frame.on('data', (piece: Buffer) => {
        if (!this.push(piece)) frame.pause();
      });
      // On damaged data node:zlib emits 'error' and never calls back the write: the error is ours at once.
      frame.on('error', (error) => this.destroy(error));
      this.frame = frame;
    }
    const frame = this.frame;
    return new Promise((resolve, reject) => {
      frame.once('error', reject);
      frame.write(bytes, (error) => {
        frame.off('error', reject);
        if (error) reject(error);
        else resolve();
      });
    });
  }
}

/** Magic numbers of RFC 8878: a zstd frame, and the 16 of a skippable frame (the low 4 bits free). */
const ZSTD_FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_FRAME_MAGIC = 0x184d2a50;
const DICTIONARY_ID_BYTES = [0, 1, 2, 4];
const CONTENT_SIZE_BYTES = [0, 2, 4, 8];

/**
 * Where frames end in a stream of zstd frames (RFC 8878), read from their
 * frame and block headers alone: nothing is decompressed, and at most four
 * bytes of a header are held between chunks.
 */
export class ZstdFrameEnds {
  private readonly field = Buffer.alloc(4);
  private filled = 0;
  private wanted = 4;
  private onField: (field: Buffer) => void = (field) => this.magic(field);
  private skipping = 0;
  private afterSkip: () => void = () => undefined;
  private hasChecksum = false;
  private ends: number[] = [];
  private offset = 0;
  /** False between frames, true from a frame's first byte to its last. */
  inFrame = false;

  /** The offsets in `chunk` just past each frame that ends within it. */
  scan(chunk: Buffer): number[] {
    this.ends = [];
    for (this.offset = 0; this.offset < chunk.length; ) {
      this.inFrame = true;
      if (this.skipping > 0) {
        const skipped = Math.min(this.skipping, chunk.length - this.offset);
        this.skipping -= skipped;
        this.offset += skipped;
        if (this.skipping === 0) this.afterSkip();
        continue;
      }
      const taken = Math.min(this.wanted - this.filled, chunk.length - this.offset);
      chunk.copy(this.field, this.filled, this.offset, this.offset + taken);
      this.filled += taken;
      this.offset += taken;
      if (this.filled === this.wanted) {
        this.filled = 0;
        this.onField(this.field.subarray(0, this.wanted));
      }
    }
    return this.ends;
  }

  private read(bytes: number, then: (field: Buffer) => void): void {
    this.wanted = bytes;
    this.onField = then;
  }

  private skip(bytes: number, then: () => void): void {
    if (bytes === 0) return then();
    this.skipping = bytes;
    this.afterSkip = then;
  }

  private magic(field: Buffer): void {
    const magic = field.readUInt32LE(0);
    if (magic === ZSTD_FRAME_MAGIC) return this.read(1, (descriptor) => this.frameHeader(descriptor[0]!));
    if ((magic & 0xfffffff0) === SKIPPABLE_FRAME_MAGIC) return this.read(4, (size) => this.skip(size.readUInt32LE(0), () => this.frameEnd()));
    throw new Error(`not a zstd frame (magic number ${magic.toString(16).padStart(8, '0')})`);
  }

  private frameHeader(descriptor: number): void {
    const singleSegment = (descriptor >> 5) & 1;
    const contentSizeBytes = CONTENT_SIZE_BYTES[descriptor >> 6]! || singleSegment;
    this.hasChecksum = ((descriptor >> 2) & 1) === 1;
    this.skip((singleSegment ? 0 : 1) + DICTIONARY_ID_BYTES[descriptor & 3]! + contentSizeBytes, () => this.read(3, (header) => this.block(header)));
  }

  private block(header: Buffer): void {
    const value = header.readUIntLE(0, 3);
    const last = (value & 1) === 1;
    const type = (value >> 1) & 3;
    if (type === 3) throw new Error('a zstd block of the reserved type: the data is damaged');
    const next = () => (!last ? this.read(3, (following) => this.block(following)) : this.skip(this.hasChecksum ? 4 : 0, () => this.frameEnd()));
    // An RLE block (type 1) holds its one byte; raw and compressed blocks their size in bytes.
    this.skip(type === 1 ? 1 : value >>> 3, next);
  }

  private frameEnd(): void {
    this.ends.push(this.offset);
    this.inFrame = false;
    this.read(4, (field) => this.magic(field));
  }
}

function threadPoolCompression(level: number, frameChecksum = true): Transform {
  return createZstdCompress({
    chunkSize: THREAD_POOL_CHUNK,
    params: {
      [constants.ZSTD_c_compressionLevel]: level,
      [constants.ZSTD_c_checksumFlag]: frameChecksum ? 1 : 0,
    },
  });
}

/**
 * node:zlib's compression of a file, fed from two reused buffers: one is read
 * while the thread pool compresses the other. A file read stream allocates
 * a fresh buffer per chunk, and those outlive the young generation: with
 * three uploads in flight the pusher held up to 67 MiB of dead ones.
 */
function threadPoolCompressedFile(path: string, level: number): Readable {
  const compression = threadPoolCompression(level);
  void feedFile(path, compression);
  return compression;
}

/** Writes the file into `stream`; a buffer is read into again only once the stream has taken what it held (its write callback). */
async function feedFile(path: string, stream: Writable): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    const buffers = [Buffer.allocUnsafeSlow(THREAD_POOL_FILE_CHUNK), Buffer.allocUnsafeSlow(THREAD_POOL_FILE_CHUNK)];
    const taken: Promise<Error | null | undefined>[] = [Promise.resolve(null), Promise.resolve(null)];
    for (let turn = 0; ; turn ^= 1) {
      const failure = await taken[turn];
      if (failure) throw failure;
      const buffer = buffers[turn]!;
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      taken[turn] = new Promise((resolve) => stream.write(buffer.subarray(0, bytesRead), resolve));
    }
    stream.end();
  } catch (error) {
    stream.destroy(error as Error);
  } finally {
    await handle?.close();
  }
}

function compressedFile(binding: ZstdBinding, path: string, level: number): Readable {
  const frames = new FrameWriter(binding, level, OUTPUT_CHUNK);
  const fd = openSync(path, 'r');
  const input = Buffer.allocUnsafe(FILE_CHUNK);
  function* pieces(): Generator<Buffer> {
    try {
      for (let done = false; !done; ) {
        const bytesRead = readSync(fd, input, 0, input.length, null);
        done = bytesRead === 0;
        yield* frames.compress(input.subarray(0, bytesRead), done);
      }
    } finally {
      closeSync(fd);
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

async function decompressInto(binding: ZstdBinding, source: AsyncIterable<Buffer>, consume: (piece: Buffer) => void, what: string): Promise<void> {
  const context = new binding.DCtx();
  const output = Buffer.allocUnsafe(OUTPUT_CHUNK);
  let inFrame = false;
  for await (const chunk of source) {
    for (let pending = chunk; ; ) {
      let result;
      try {
        result = context.decompressStream(output, pending);
      } catch (error) {
        throw new IntegrityError(`${what} is corrupt: ${(error as Error).message}`);
      }
      const [remaining, produced, consumed] = result;
      if (produced > 0) consume(output.subarray(0, produced));
      pending = pending.subarray(consumed);
      if (pending.length === 0 && (produced < output.length || remaining === 0)) {
        inFrame = remaining !== 0;
        break;
      }
    }
  }
  if (inFrame) throw new IntegrityError(`${what} is corrupt: it ends in the middle of a zstd frame`);
}
