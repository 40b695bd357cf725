/**
 * A synthetic archive in walship's layout, as big as wanted, for the
 * benchmarks (catalog, retention, status) and tests that need many objects:
 * WAL segments on three timelines with a few gaps, their history files,
 * backups with parts, metadata.json and sentinels spread over time, and
 * walship/archive.json. Keys come in key order, made as they are asked for,
 * so a listing of a million objects holds none of them. Contents are small
 * placeholders: nothing in it can be restored.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { ARCHIVE_IDENTITY_KEY, metadataKey, partKey, partName, sentinelKey } from '../../src/archive/layout.ts';
import { formatLsn, segmentStartLsn } from '../../src/postgres/lsn.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { forEachConcurrently } from '../../src/util/concurrency.ts';

export interface SyntheticShape {
  /** WAL segments, numbered from 0: timeline 1 holds the first half, 2 the next quarter, 3 the rest. */
  segments: number;
  backups: number;
  partsPerBackup?: number;
  /** One segment in this many is missing (default 100,000). */
  missingEvery?: number;
  segmentSize?: number;
  /** The first backup's finish time; the others follow `backupEveryMs` apart (default one a day from 2025-01-01). */
  firstBackup?: number;
  backupEveryMs?: number;
  /** Stored bytes of each WAL object and part (default 100). */
  objectBytes?: number;
}

export interface SyntheticObject {
  key: string;
  content: Buffer;
  /** What walship stores with WAL (its CRC-32 and size), for the WAL objects. */
  metadata?: Record<string, string>;
}

export const SYNTHETIC_SYSTEM_IDENTIFIER = '7000000000000000001';
const hex8 = (value: number) => value.toString(16).toUpperCase().padStart(8, '0');

export class SyntheticArchive {
  readonly segments: number;
  readonly segmentSize: number;
  readonly partsPerBackup: number;
  readonly objectBytes: number;
  /** Segment numbers where timelines 2 and 3 begin. */
  readonly switches: readonly [number, number];
  private readonly missingEvery: number;
  private readonly backupSegments: number[];
  private readonly firstBackup: number;
  private readonly backupEveryMs: number;

  constructor(shape: SyntheticShape) {
    this.segments = shape.segments;
    this.segmentSize = shape.segmentSize ?? 16 << 20;
    this.partsPerBackup = shape.partsPerBackup ?? 20;
    this.objectBytes = shape.objectBytes ?? 100;
    this.missingEvery = shape.missingEvery ?? 100_000;
    this.switches = [Math.floor(shape.segments / 2), Math.floor((shape.segments * 3) / 4)];
    this.backupSegments = Array.from({ length: shape.backups }, (_, index) => Math.floor(((index + 0.5) * shape.segments) / shape.backups));
    this.firstBackup = shape.firstBackup ?? Date.UTC(2025, 0, 1, 2);
    this.backupEveryMs = shape.backupEveryMs ?? 86_400_000;
  }

  timelineOf(segment: number): number {
    return segment < this.switches[0] ? 1 : segment < this.switches[1] ? 2 : 3;
  }

  isMissing(segment: number): boolean {
    return segment % this.missingEvery === this.missingEvery - 1;
  }

  /** Backup names, oldest first (by finish time). */
  backupNames(): string[] {
    return this.backupSegments.map((segment) => this.backupName(segment));
  }

  private backupName(segment: number): string {
    return `base_${segmentName(this.timelineOf(segment), BigInt(segment), this.segmentSize)}`;
  }

  /** The sentinel of the index-th backup: it starts in its segment and is consistent three segments later. */
  sentinel(index: number): BackupSentinel {
    const segment = this.backupSegments[index]!;
    const start = segmentStartLsn(BigInt(segment), this.segmentSize) + 40n;
    const finish = this.firstBackup + index * this.backupEveryMs;
    return {
      BackupName: this.backupName(segment),
      LSN: formatLsn(start),
      FinishLSN: formatLsn(start + 3n * BigInt(this.segmentSize)),
      Timeline: this.timelineOf(segment),
      StartTime: new Date(finish - 600_000).toISOString(),
      FinishTime: new Date(finish).toISOString(),
      Hostname: 'synthetic',
      DataDir: '/var/lib/postgresql/15/main',
      PgVersion: 150010,
      SystemIdentifier: SYNTHETIC_SYSTEM_IDENTIFIER,
      WalSegmentSize: this.segmentSize,
      UncompressedSize: this.partsPerBackup * 4 * this.objectBytes,
      CompressedSize: this.partsPerBackup * this.objectBytes,
      Compression: 'zstd',
      Label: 'synthetic',
      IsPermanent: false,
      UserData: null,
      Parts: Array.from({ length: this.partsPerBackup }, (_, part) => ({
        Name: partName(part + 1, { extension: 'zst' }),
        UncompressedSize: 4 * this.objectBytes,
        CompressedSize: this.objectBytes,
        SHA256: '0'.repeat(64),
      })),
      WalshipVersion: '0.1.0',
    };
  }

  /** The text of timeline 2's and 3's history files. */
  history(timeline: number): string {
    return this.switches
      .slice(0, timeline - 1)
      .map((segment, index) => `${index + 1}\t${formatLsn(segmentStartLsn(BigInt(segment), this.segmentSize))}\tno recovery target specified\n`)
      .join('');
  }

  /** Every WAL key in key order, history files included; names made with number arithmetic, so listing costs little. */
  *walKeys(): Generator<string> {
    const perId = Number(0x1_0000_0000n / BigInt(this.segmentSize));
    for (const timeline of [1, 2, 3]) {
      // 00000002.history sorts before 000000020000...: '.' comes before '0'.
      if (timeline > 1) yield `wal_005/${hex8(timeline)}.history`;
      const end = timeline === 3 ? this.segments : this.switches[timeline - 1]!;
      for (let segment = timeline === 1 ? 0 : this.switches[timeline - 2]!; segment < end; segment++) {
        if (!this.isMissing(segment)) yield `wal_005/${hex8(timeline)}${hex8(Math.floor(segment / perId))}${hex8(segment % perId)}.zst`;
      }
    }
  }

  /** The content of a small document: a sentinel or metadata.json, a history file, walship/archive.json; undefined for parts and segments. */
  document(key: string): Buffer | undefined {
    if (key === ARCHIVE_IDENTITY_KEY) {
      return Buffer.from(JSON.stringify({ SystemIdentifier: SYNTHETIC_SYSTEM_IDENTIFIER, WalSegmentSize: this.segmentSize, CreatedAt: new Date(this.firstBackup).toISOString(), WalshipVersion: '0.1.0' }));
    }
    const history = /^wal_005\/([0-9A-F]{8})\.history$/.exec(key);
    if (history) return Buffer.from(this.history(parseInt(history[1]!, 16)));
    const backup = /^basebackups_005\/(base_[0-9A-F]{24})(?:_backup_stop_sentinel\.json|\/metadata\.json)$/.exec(key);
    const index = backup ? this.backupNames().indexOf(backup[1]!) : -1;
    return index < 0 ? undefined : Buffer.from(`${JSON.stringify(this.sentinel(index), null, 2)}\n`);
  }

  /** Every object in key order: the backups, the WAL, walship/archive.json. */
  *objects(): Generator<SyntheticObject> {
    const placeholder = Buffer.alloc(this.objectBytes, 0x5a);
    for (const name of [...this.backupNames()].sort()) {
      for (let part = 1; part <= this.partsPerBackup; part++) yield { key: partKey(name, partName(part, { extension: 'zst' })), content: placeholder };
      for (const key of [metadataKey(name), sentinelKey(name)]) yield { key, content: this.document(key)! };
    }
    const metadata = { walship_crc32: '0', walship_size: String(this.segmentSize) };
    for (const key of this.walKeys()) yield key.endsWith('.history') ? { key, content: this.document(key)! } : { key, content: placeholder, metadata };
    yield { key: ARCHIVE_IDENTITY_KEY, content: this.document(ARCHIVE_IDENTITY_KEY)! };
  }
}

/** Writes whole files with plain synchronous calls, no fsync, making each directory once. */
function plainFileWriter(): (path: string, content: Buffer | string) => void {
  const made = new Set<string>();
  return (path, content) => {
    const directory = dirname(path);
    if (!made.has(directory)) {
      mkdirSync(directory, { recursive: true });
      made.add(directory);
    }
    const fd = openSync(path, 'w', 0o640);
    try {
      writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    } finally {
      closeSync(fd);
    }
  };
}

/**
 * Writes `archive` under a file storage root as FileStorage lays it out
 * (metadata in .walship/metadata/): a million files in about a minute.
 */
export function writeToDirectory(archive: SyntheticArchive, root: string): number {
  const write = plainFileWriter();
  let count = 0;
  for (const { key, content, metadata } of archive.objects()) {
    write(join(root, key), content);
    if (metadata) write(join(root, '.walship/metadata', `${key}.json`), JSON.stringify(metadata));
    count++;
  }
  return count;
}

/**
 * Writes `archive` under `prefix` straight into the directory of an s3rver
 * bucket (Emulator.objectsDirectory), in s3rver's own layout: an object, its
 * MD5 and its metadata as three files (the metadata left empty). A put per
 * object would take minutes for 100,000 objects. Relies on s3rver internals,
 * as s3rver-fast.ts does: its version is pinned in package.json.
 */
export function writeToS3rverDirectory(archive: SyntheticArchive, bucketDirectory: string, prefix: string): number {
  const write = plainFileWriter();
  let count = 0;
  for (const { key, content } of archive.objects()) {
    const path = join(bucketDirectory, prefix, key);
    write(`${path}._S3rver_object`, content);
    write(`${path}._S3rver_object.md5`, '0'.repeat(32));
    write(`${path}._S3rver_metadata.json`, '{}');
    count++;
  }
  return count;
}

/** Writes `archive` through a Storage (a cloud emulator), `concurrency` puts at once. */
export async function writeToStorage(archive: SyntheticArchive, storage: Storage, concurrency = 32): Promise<number> {
  let count = 0;
  await forEachConcurrently(archive.objects(), concurrency, async ({ key, content, metadata }) => {
    await storage.put(key, Readable.from([content]), { metadata });
    count++;
  });
  return count;
}
