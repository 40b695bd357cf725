/**
 * Reading the LZ4 frame format (WAL-G's default compression, `lz4` on the
 * command line), streaming: frames one after another, skippable frames,
 * independent and linked blocks, block and content checksums (xxHash32),
 * and the declared content size, all checked. Damaged or truncated input
 * fails the stream (the codec names the object); nothing is guessed.
 *
 * npm has no maintained streaming LZ4-frame decoder (lz4-napi decodes only
 * whole frames held in memory, and a native addon could not load where the
 * cache directory is noexec, which would stop recovery): the format is
 * small enough to read here.
 */
import { Transform, type TransformCallback } from 'node:stream';

const FRAME_MAGIC = 0x184d2204;
const LEGACY_MAGIC = 0x184c2102;
const SKIPPABLE_MAGIC = 0x184d2a50;
const SKIPPABLE_MASK = 0xfffffff0;
/** Linked blocks may refer back this far into earlier output. */
const HISTORY = 64 << 10;
const UNCOMPRESSED_BLOCK = 0x80000000;
const BLOCK_MAX_SIZES: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };

/** Bytes arriving in chunks, taken off the front in pieces of a known size. */
class ByteQueue {
  private readonly chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next `count` bytes, left in place; undefined until that many have arrived. */
  peek(count: number): Buffer | undefined {
    if (this.length < count) return undefined;
    const first = this.chunks[0]!;
    if (first.length - this.head >= count) return first.subarray(this.head, this.head + count);
    const piece = Buffer.allocUnsafe(count);
    let filled = first.copy(piece, 0, this.head);
    for (let index = 1; filled < count; index++) filled += this.chunks[index]!.copy(piece, filled, 0, count - filled);
    return piece;
  }

  /** The next `count` bytes, consumed; undefined until that many have arrived. */
  take(count: number): Buffer | undefined {
    if (this.length < count) return undefined;
    this.length -= count;
    const first = this.chunks[0];
    if (first && first.length - this.head >= count) {
      const piece = first.subarray(this.head, this.head + count);
      this.advance(count);
      return piece;
    }
    const piece = Buffer.allocUnsafe(count);
    for (let filled = 0; filled < count; ) {
      const chunk = this.chunks[0]!;
      const size = Math.min(chunk.length - this.head, count - filled);
      chunk.copy(piece, filled, this.head, this.head + size);
      filled += size;
      this.advance(size);
    }
    return piece;
  }

  /** Drops up to `count` bytes; returns how many were dropped. */
  skip(count: number): number {
    let skipped = 0;
    while (skipped < count && this.chunks.length > 0) {
      const size = Math.min(this.chunks[0]!.length - this.head, count - skipped);
      skipped += size;
      this.advance(size);
    }
    this.length -= skipped;
    return skipped;
  }

  private advance(size: number): void {
    this.head += size;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}

const PRIME1 = 0x9e3779b1;
const PRIME2 = 0x85ebca77;
const PRIME3 = 0xc2b2ae3d;
const PRIME4 = 0x27d4eb2f;
const PRIME5 = 0x165667b1;

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function readUint32(data: Uint8Array, at: number): number {
  return data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24);
}

function round(accumulator: number, lane: number): number {
  return Math.imul(rotateLeft((accumulator + Math.imul(lane, PRIME2)) | 0, 13), PRIME1);
}

/** xxHash32 with seed 0, fed piece by piece: the checksum of LZ4 frames. */
export class XxHash32 {
  private v1 = (PRIME1 + PRIME2) | 0;
  private v2 = PRIME2 | 0;
  private v3 = 0;
  private v4 = -PRIME1 | 0;
  private total = 0;
  private readonly stripe = Buffer.alloc(16);
  private buffered = 0;

  update(data: Uint8Array): void {
    let at = 0;
    this.total += data.length;
    if (this.buffered > 0) {
      const size = Math.min(16 - this.buffered, data.length);
      this.stripe.set(data.subarray(0, size), this.buffered);
      this.buffered += size;
      at = size;
      if (this.buffered < 16) return;
      this.consume(this.stripe, 0, 16);
      this.buffered = 0;
    }
    const whole = at + ((data.length - at) & ~15);
    this.consume(data, at, whole);
    if (whole < data.length) {
      this.stripe.set(data.subarray(whole), 0);
      this.buffered = data.length - whole;
    }
  }

  digest(): number {
    let hash =
      this.total >= 16
        ? (rotateLeft(this.v1, 1) + rotateLeft(this.v2, 7) + rotateLeft(this.v3, 12) + rotateLeft(this.v4, 18)) | 0
        : PRIME5 | 0;
    hash = (hash + this.total) | 0; // the length modulo 2^32, as the reference does
    let at = 0;
    for (; at + 4 <= this.buffered; at += 4) {
      hash = Math.imul(rotateLeft((hash + Math.imul(readUint32(this.stripe, at), PRIME3)) | 0, 17), PRIME4);
    }
    for (; at < this.buffered; at++) hash = Math.imul(rotateLeft((hash + Math.imul(this.stripe[at]!, PRIME5)) | 0, 11), PRIME1);
    hash = Math.imul(hash ^ (hash >>> 15), PRIME2);
    hash = Math.imul(hash ^ (hash >>> 13), PRIME3);
    return (hash ^ (hash >>> 16)) >>> 0;
  }

  private consume(data: Uint8Array, from: number, to: number): void {
    let { v1, v2, v3, v4 } = this;
    for (let at = from; at < to; at += 16) {
      v1 = round(v1, readUint32(data, at));
      v2 = round(v2, readUint32(data, at + 4));
      v3 = round(v3, readUint32(data, at + 8));
      v4 = round(v4, readUint32(data, at + 12));
    }
    Object.assign(this, { v1, v2, v3, v4 });
  }
}

export function xxHash32(data: Uint8Array): number {
  const hash = new XxHash32();
  hash.update(data);
  return hash.digest();
}

class Corrupt extends Error {}

/**
 * Decodes one LZ4 block from `source` into `target` at `start`, writing no
 * further than `limit`; matches may reach back to the start of `target`
 * (the history of linked blocks). Returns where the output ends.
 */
export function decodeBlock(source: Uint8Array, target: Uint8Array, start: number, limit: number): number {
  const end = source.length;
  let input = 0;
  let output = start;
  for (;;) {
    if (input >= end) throw new Corrupt('a block ends inside a sequence');
    const token = source[input++]!;
    let literals = token >>> 4;
    if (literals === 15) {
      for (let more = 255; more === 255; literals += more) {
        if (input >= end) throw new Corrupt('a literal length runs past the block');
        more = source[input++]!;
      }
    }
    if (input + literals > end) throw new Corrupt('literals run past the block');
    if (output + literals > limit) throw new Corrupt('a block decodes to more than its maximum size');
    if (literals < 32) for (let index = 0; index < literals; index++) target[output + index] = source[input + index]!;
    else target.set(source.subarray(input, input + literals), output);
    input += literals;
    output += literals;
    if (input === end) return output; // the last sequence holds literals only
    if (input + 2 > end) throw new Corrupt('a match offset runs past the block');
    const offset = source[input]! | (source[input + 1]! << 8);
    input += 2;
    if (offset === 0 || offset > output) throw new Corrupt('a match refers to data before the start');
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      for (let more = 255; more === 255; length += more) {
        if (input >= end) throw new Corrupt('a match length runs past the block');
        more = source[input++]!;
      }
    }
    if (output + length > limit) throw new Corrupt('a block decodes to more than its maximum size');
    const from = output - offset;
    if (length < 32) for (let index = 0; index < length; index++) target[output + index] = target[from + index]!;
    else if (offset >= length) target.copyWithin(output, from, from + length);
    else {
      // Overlapping: the last `offset` bytes repeat. Copy them once, then the copy doubles itself.
      target.copyWithin(output, from, output);
      for (let done = offset; done < length; ) {
        const size = Math.min(done - (done % offset), length - done);
        target.copyWithin(output + done, output, output + size);
        done += size;
      }
    }
    output += length;
  }
}

interface FrameState {
  independent: boolean;
  blockChecksums: boolean;
  contentHash: XxHash32 | undefined;
  contentSize: bigint | undefined;
  decoded: bigint;
  blockMax: number;
  /** Earlier output kept at the start of `window`, for linked blocks. */
  history: number;
  window: Buffer;
}

type Step = { kind: 'magic' } | { kind: 'skip'; remaining: number } | { kind: 'block-size' } | { kind: 'block'; size: number; compressed: boolean } | { kind: 'content-checksum' };

/** A stream of LZ4 frames in, their content out. */
export class Lz4FrameDecoder extends Transform {
  private readonly queue = new ByteQueue();
  private step: Step = { kind: 'magic' };
  private frame: FrameState | undefined;
  private frames = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.queue.push(chunk);
    try {
      this.decodeQueued();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.step.kind !== 'magic' || this.queue.length > 0 || this.frames === 0) {
      callback(new Corrupt(this.frames === 0 && this.queue.length === 0 ? 'it holds no LZ4 frame' : 'it ends in the middle of an LZ4 frame'));
      return;
    }
    callback();
  }

  private decodeQueued(): void {
    for (;;) {
      const step = this.step;
      if (step.kind === 'magic') {
        if (!this.readFrameStart()) return;
      } else if (step.kind === 'skip') {
        step.remaining -= this.queue.skip(step.remaining);
        if (step.remaining > 0) return;
        this.step = { kind: 'magic' };
      } else if (step.kind === 'block-size') {
        const bytes = this.queue.take(4);
        if (!bytes) return;
        this.readBlockSize(readUint32(bytes, 0) >>> 0);
      } else if (step.kind === 'block') {
        const frame = this.frame!;
        const bytes = this.queue.take(step.size + (frame.blockChecksums ? 4 : 0));
        if (!bytes) return;
        const data = bytes.subarray(0, step.size);
        if (frame.blockChecksums && xxHash32(data) !== readUint32(bytes, step.size) >>> 0) throw new Corrupt('a block checksum does not match');
        this.emitBlock(frame, data, step.compressed);
        this.step = { kind: 'block-size' };
      } else {
        const bytes = this.queue.take(4);
        if (!bytes) return;
        if (this.frame!.contentHash!.digest() !== readUint32(bytes, 0) >>> 0) throw new Corrupt('the content checksum does not match');
        this.endFrame();
      }
    }
  }

  /** The magic number and frame descriptor, consumed once all of it has arrived; false until then. */
  private readFrameStart(): boolean {
    const magicBytes = this.queue.peek(4);
    if (!magicBytes) return false;
    const magic = readUint32(magicBytes, 0) >>> 0;
    if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
      const header = this.queue.take(8);
      if (!header) return false;
      this.step = { kind: 'skip', remaining: readUint32(header, 4) >>> 0 };
      return true;
    }
    if (magic === LEGACY_MAGIC) throw new Corrupt('it is in the legacy LZ4 format (lz4 -l), which WAL-G never writes');
    if (magic !== FRAME_MAGIC) throw new Corrupt(this.frames === 0 ? 'it does not start with an LZ4 frame' : 'unexpected data after an LZ4 frame');
    const start = this.queue.peek(5);
    if (!start) return false;
    const flags = start[4]!;
    const length = 7 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0);
    const header = this.queue.take(length);
    if (!header) return false;
    const descriptor = header.subarray(4, length - 1);
    if (((xxHash32(descriptor) >>> 8) & 0xff) !== header[length - 1]) throw new Corrupt('the frame header checksum does not match');
    if (flags >>> 6 !== 1) throw new Corrupt(`frame version ${flags >>> 6} is not LZ4's version 1`);
    if (flags & 0x01) throw new Corrupt('the frame needs a dictionary');
    const blockMax = BLOCK_MAX_SIZES[(descriptor[1]! >>> 4) & 7];
    if ((flags & 0x02) !== 0 || (descriptor[1]! & 0x8f) !== 0 || blockMax === undefined) throw new Corrupt('the frame header has reserved bits set');
    const independent = (flags & 0x20) !== 0;
    const windowSize = (independent ? 0 : HISTORY) + blockMax;
    this.frame = {
      independent,
      blockChecksums: (flags & 0x10) !== 0,
      contentHash: flags & 0x04 ? new XxHash32() : undefined,
      contentSize: flags & 0x08 ? descriptor.readBigUInt64LE(2) : undefined,
      decoded: 0n,
      blockMax,
      history: 0,
      window: this.frame?.window.length === windowSize ? this.frame.window : Buffer.allocUnsafe(windowSize),
    };
    this.step = { kind: 'block-size' };
    return true;
  }

  private readBlockSize(word: number): void {
    const frame = this.frame!;
    if (word === 0) {
      if (frame.contentSize !== undefined && frame.contentSize !== frame.decoded) {
        throw new Corrupt(`the frame declares ${frame.contentSize} bytes of content but holds ${frame.decoded}`);
      }
      if (frame.contentHash) this.step = { kind: 'content-checksum' };
      else this.endFrame();
      return;
    }
    const compressed = (word & UNCOMPRESSED_BLOCK) === 0;
    const size = word & ~UNCOMPRESSED_BLOCK;
    if (size > frame.blockMax) throw new Corrupt('a block is larger than the frame allows');
    this.step = { kind: 'block', size, compressed };
  }

  private emitBlock(frame: FrameState, data: Buffer, compressed: boolean): void {
    const start = frame.history;
    let end: number;
    if (compressed) end = decodeBlock(data, frame.window, start, start + frame.blockMax);
    else {
      frame.window.set(data, start);
      end = start + data.length;
    }
    const content = Buffer.from(frame.window.subarray(start, end)); // a copy: the window is reused
    frame.contentHash?.update(content);
    frame.decoded += BigInt(content.length);
    if (!frame.independent) {
      const kept = Math.min(HISTORY, end);
      frame.window.copyWithin(0, end - kept, end);
      frame.history = kept;
    }
    if (content.length > 0) this.push(content);
  }

  private endFrame(): void {
    this.frames++;
    this.step = { kind: 'magic' };
  }
}
