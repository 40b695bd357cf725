/**
 * Gathers small chunks into larger ones. Compressors emit output in many small
 * pieces (zstd's multi-threaded mode often less than a kilobyte); writing each
 * one on its own costs a system call or a request apiece.
 */
import { type Step, stepStream, type TransformStage } from './pipeline.ts';

/** Passes on chunks of at least `minimumChunkBytes` (the last one may be smaller). */
export function coalesceStage(minimumChunkBytes: number): TransformStage {
  return { name: 'coalesce', transform: () => stepStream(new Coalescer(minimumChunkBytes)), step: () => new Coalescer(minimumChunkBytes) };
}

class Coalescer implements Step {
  private readonly minimum: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(minimumChunkBytes: number) {
    this.minimum = minimumChunkBytes;
  }

  write(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    return this.pendingBytes >= this.minimum ? this.release() : [];
  }

  end(): Buffer[] {
    return this.pendingBytes > 0 ? this.release() : [];
  }

  private release(): Buffer[] {
    const gathered = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return [gathered];
  }
}
