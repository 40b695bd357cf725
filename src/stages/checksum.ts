/**
 * Integrity stages: checksums and byte counts computed on the way into
 * storage and verified on the way out. They only watch the bytes go by.
 *
 * WAL uses CRC-32 (as gzip does) over the uncompressed content: it catches
 * corruption and truncation for a few milliseconds per segment, and needs no
 * crypto module on archive_command's hot path. Base backup parts use SHA-256.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { IntegrityError, WalshipError } from '../errors.ts';
import type { ResultRole, StageResults, WatchStage } from './pipeline.ts';
import { crc32Hex } from '../util/crc32.ts';

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
    return this.hash ? this.hash.digest('hex') : crc32Hex(this.crc);
  }
}

/** Counts the bytes that pass: reports '<role>-size'. */
export class SizeStage implements WatchStage {
  readonly name: string;
  private readonly role: ResultRole;
  private bytes = 0;

  constructor(role: ResultRole) {
    this.role = role;
    this.name = `${role}-size`;
  }

  update(piece: Buffer): void {
    this.bytes += piece.length;
  }

  finish(): StageResults {
    return { [`${this.role}-size`]: this.bytes };
  }
}

/** Checksums and counts the bytes that pass: reports '<role>-<algorithm>' and '<role>-size'. */
export class DigestStage implements WatchStage {
  readonly name: string;
  private readonly role: ResultRole;
  private readonly checksum: Checksum;
  private bytes = 0;
  private result: ContentDigest | undefined;

  constructor(algorithm: ChecksumAlgorithm, role: ResultRole = 'content') {
    this.role = role;
    this.name = `${role}-${algorithm}`;
    this.checksum = new Checksum(algorithm);
  }

  update(piece: Buffer): void {
    this.checksum.update(piece);
    this.bytes += piece.length;
  }

  finish(): StageResults {
    this.result = { algorithm: this.checksum.algorithm, checksum: this.checksum.hex(), size: this.bytes };
    return { [`${this.role}-${this.result.algorithm}`]: this.result.checksum, [`${this.role}-size`]: this.result.size };
  }

  /** The digest of everything that passed; only valid once the stream has ended. */
  digest(): ContentDigest {
    if (!this.result) throw new WalshipError('internal error: digest requested before the stream ended');
    return this.result;
  }
}

/** What stored content must match; each part is checked only when known. */
export interface ExpectedContent {
  algorithm: ChecksumAlgorithm;
  checksum?: string;
  size?: number;
}

/** Fails the stream at its end, with IntegrityError naming `what`, unless the bytes match `expected`. */
export class VerifyStage implements WatchStage {
  readonly name: string;
  private readonly actual: DigestStage;
  private readonly expected: ExpectedContent;
  private readonly what: string;

  constructor(expected: ExpectedContent, what: string) {
    this.name = `verify-${expected.algorithm}`;
    this.actual = new DigestStage(expected.algorithm);
    this.expected = expected;
    this.what = what;
  }

  update(piece: Buffer): void {
    this.actual.update(piece);
  }

  finish(): void {
    this.actual.finish();
    const { checksum, size } = this.actual.digest();
    if (this.expected.size !== undefined && size !== this.expected.size) {
      throw new IntegrityError(`${this.what} is corrupt: ${size} bytes, expected ${this.expected.size}`);
    }
    if (this.expected.checksum !== undefined && checksum !== this.expected.checksum) {
      const name = algorithmNames[this.expected.algorithm];
      throw new IntegrityError(`${this.what} is corrupt: ${name} ${checksum} does not match the stored ${this.expected.checksum}`);
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
