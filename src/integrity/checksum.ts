/**
 * Integrity stream stages: a SHA-256 and byte count over the uncompressed
 * content, computed on the way into storage and verified on the way out.
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.ts';

export interface ContentDigest {
  sha256: string;
  size: number;
}

/** Passes bytes through unchanged while hashing them. */
export class DigestStage extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private result: ContentDigest | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = { sha256: this.hash.digest('hex'), size: this.bytes };
    callback();
  }

  /** The digest of everything that passed; only valid once the stream has ended. */
  digest(): ContentDigest {
    if (!this.result) throw new Error('digest requested before the stream ended');
    return this.result;
  }
}

/** Fails the stream at its end when the content does not match `expected`. */
export class VerifyStage extends DigestStage {
  private readonly expected: Partial<ContentDigest>;
  private readonly what: string;

  constructor(expected: Partial<ContentDigest>, what: string) {
    super();
    this.expected = expected;
    this.what = what;
  }

  override _flush(callback: TransformCallback): void {
    super._flush((error) => {
      if (error) return callback(error);
      const actual = this.digest();
      if (this.expected.size !== undefined && actual.size !== this.expected.size) {
        return callback(new IntegrityError(`${this.what} is corrupt: ${actual.size} bytes after decompression, expected ${this.expected.size}`));
      }
      if (this.expected.sha256 !== undefined && actual.sha256 !== this.expected.sha256) {
        return callback(new IntegrityError(`${this.what} is corrupt: SHA-256 ${actual.sha256} does not match the stored ${this.expected.sha256}`));
      }
      callback();
    });
  }
}

/** Digests a file through one reused buffer: no garbage, so memory stays flat however large the file. */
export async function digestFile(path: string): Promise<ContentDigest> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1 << 20);
  const handle = await open(path, 'r');
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), size };
}
