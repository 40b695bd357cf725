/**
 * Integrity stream stages: a checksum and byte count computed on the way into
 * storage and verified on the way out.
 *
 * WAL uses CRC-32 (as gzip does) over the uncompressed content: it catches
 * corruption and truncation for a few milliseconds per segment, and needs no
 * crypto module on archive_command's hot path. Base backup parts use SHA-256.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { IntegrityError } from '../errors.ts';

export type ChecksumAlgorithm = 'crc32' | 'sha256';

export interface ContentDigest {
  algorithm: ChecksumAlgorithm;
  /** Lowercase hex. */
  checksum: string;
  size: number;
}

const algorithmNames: Record<ChecksumAlgorithm, string> = { crc32: 'CRC-32', sha256: 'SHA-256' };

/** An incremental checksum of either algorithm. */
class Checksum {
  readonly algorithm: ChecksumAlgorithm;
  private crc = 0;
  private readonly hash;

  constructor(algorithm: ChecksumAlgorithm) {
    this.algorithm = algorithm;
    // Loaded only when needed: the crypto module costs milliseconds at start-up.
    this.hash = algorithm === 'sha256' ? process.getBuiltinModule('node:crypto').createHash('sha256') : undefined;
  }

  update(data: Buffer): void {
    if (this.hash) this.hash.update(data);
    else this.crc = crc32(data, this.crc);
  }

  hex(): string {
    return this.hash ? this.hash.digest('hex') : this.crc.toString(16).padStart(8, '0');
  }
}

/** Passes bytes through unchanged while checksumming them. */
export class DigestStage extends Transform {
  private readonly checksum: Checksum;
  private bytes = 0;
  private result: ContentDigest | undefined;

  constructor(algorithm: ChecksumAlgorithm) {
    super();
    this.checksum = new Checksum(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.checksum.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = { algorithm: this.checksum.algorithm, checksum: this.checksum.hex(), size: this.bytes };
    callback();
  }

  /** The digest of everything that passed; only valid once the stream has ended. */
  digest(): ContentDigest {
    if (!this.result) throw new Error('digest requested before the stream ended');
    return this.result;
  }
}

/** What stored content must match; each part is checked only when known. */
export interface ExpectedContent {
  algorithm: ChecksumAlgorithm;
  checksum?: string;
  size?: number;
}

/** Checks content fed to it piece by piece against what was recorded when it was stored. */
export class ContentCheck {
  private readonly checksum: Checksum;
  private readonly expected: ExpectedContent;
  private readonly what: string;
  private bytes = 0;

  constructor(expected: ExpectedContent, what: string) {
    this.checksum = new Checksum(expected.algorithm);
    this.expected = expected;
    this.what = what;
  }

  update(data: Buffer): void {
    this.checksum.update(data);
    this.bytes += data.length;
  }

  /** Throws IntegrityError unless everything fed matches. */
  finish(): void {
    if (this.expected.size !== undefined && this.bytes !== this.expected.size) {
      throw new IntegrityError(`${this.what} is corrupt: ${this.bytes} bytes, expected ${this.expected.size}`);
    }
    const actual = this.checksum.hex();
    if (this.expected.checksum !== undefined && actual !== this.expected.checksum) {
      const name = algorithmNames[this.expected.algorithm];
      throw new IntegrityError(`${this.what} is corrupt: ${name} ${actual} does not match the stored ${this.expected.checksum}`);
    }
  }
}

/** Fails the stream at its end when the content does not match `expected`. */
export class VerifyStage extends Transform {
  private readonly check: ContentCheck;

  constructor(expected: ExpectedContent, what: string) {
    super();
    this.check = new ContentCheck(expected, what);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.check.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.check.finish();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/**
 * Digests a file through one reused buffer, with synchronous reads: no
 * garbage and no per-chunk promises, so it costs little more than the checksum.
 */
export function digestFile(path: string, algorithm: ChecksumAlgorithm): ContentDigest {
  const checksum = new Checksum(algorithm);
  const buffer = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (let bytesRead; (bytesRead = readSync(fd, buffer, 0, buffer.length, null)) > 0; size += bytesRead) {
      checksum.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    closeSync(fd);
  }
  return { algorithm, checksum: checksum.hex(), size };
}
