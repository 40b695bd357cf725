/**
 * Gathers small chunks into larger ones. Compressors emit output in many small
 * pieces (zstd's multi-threaded mode often less than a kilobyte); writing each
 * one on its own costs a system call or a request apiece.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { TransformStage } from './pipeline.ts';

/** Passes on chunks of at least `minimumChunkBytes` (the last one may be smaller). */
export function coalesceStage(minimumChunkBytes: number): TransformStage {
  return { name: 'coalesce', transform: () => new Coalescer(minimumChunkBytes) };
}

class Coalescer extends Transform {
  private readonly minimum: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(minimumChunkBytes: number) {
    super();
    this.minimum = minimumChunkBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= this.minimum) this.release();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.pendingBytes > 0) this.release();
    callback();
  }

  private release(): void {
    this.push(this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }
}
