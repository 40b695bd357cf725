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
    const total = this.pendingBytes + chunk.length;
    if (total < this.minimum) {
      // Kept past this call: a copy, since the caller may reuse the chunk's memory (Step).
      this.pending.push(Buffer.from(chunk));
      this.pendingBytes = total;
      return [];
    }
    if (this.pending.length === 0) return [chunk];
    const gathered = Buffer.concat([...this.pending, chunk], total);
    this.pending = [];
    this.pendingBytes = 0;
    return [gathered];
  }

  end(): Buffer[] {
    const rest = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return rest.length === 0 ? [] : [rest.length === 1 ? rest[0]! : Buffer.concat(rest)];
  }
}
