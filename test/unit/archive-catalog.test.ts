// The archive catalog over file storage: one listing, then the sentinels and
// history files; backups in finish-time order, WAL runs and the segments a
// recovery reads across timeline switches, and the segment size.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it, mock } from 'node:test';
import { type BackupSentinel, writeBackupDocuments } from '../../src/archive/backups.ts';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { partKey, walKey } from '../../src/archive/layout.ts';
import { chooseBackup } from '../../src/archive/select.ts';
import { type WalIntegrity, walIntegrity } from '../../src/archive/wal-integrity.ts';
import { log } from '../../src/log/logger.ts';
import { parseLsn } from '../../src/postgres/lsn.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { describeTimelines, timelinesText } from '../../src/verify/wal-show.ts';
import { walLongPageHeader } from '../support/wal.ts';

const MiB = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'walship-catalog-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function emptyArchive(): Promise<{ directory: string; storage: FileStorage }> {
  const directory = mkdtempSync(join(root, 'archive-'));
  return { directory, storage: await FileStorage.open(directory) };
}

async function putCompressed(storage: Storage, key: string, content: Buffer | string, method: 'zstd' | 'brotli' | 'none' = 'zstd'): Promise<void> {
  await storage.put(key, await new Pipeline(Readable.from([Buffer.from(content)]), [codecFor(method).compress(1)]).readable());
}

/** A complete walship backup: one part, metadata.json and the sentinel. */
async function putBackup(storage: Storage, fields: Partial<BackupSentinel> & { BackupName: string; FinishTime: string }): Promise<void> {
  const sentinel: BackupSentinel = {
    LSN: '0/2000028',
    FinishLSN: '0/2000138',
    Timeline: 1,
    StartTime: fields.FinishTime,
    Hostname: 'db1',
    DataDir: '/var/lib/postgresql/15/main',
    PgVersion: 150010,
    SystemIdentifier: '7000000000000000001',
    UncompressedSize: 1000,
    CompressedSize: 100,
    Compression: 'zstd',
    Label: 'walship backup-push',
    IsPermanent: false,
    UserData: null,
    Parts: [{ Name: 'part_001.tar.zst', UncompressedSize: 1000, CompressedSize: 100, SHA256: '00' }],
    WalshipVersion: '0.1.0',
    ...fields,
  };
  await storage.put(partKey(sentinel.BackupName, 'part_001.tar.zst'), Readable.from([Buffer.alloc(100)]));
  await writeBackupDocuments(storage, sentinel, { createOnly: true });
}

/** Storage that records its listings and reads. */
function watched(inner: Storage): Storage & { listings: string[]; reads: string[] } {
  const wrapper = {
    listings: [] as string[],
    reads: [] as string[],
    location: inner.location,
    capabilities: inner.capabilities,
    put: inner.put.bind(inner),
    head: inner.head.bind(inner),
    delete: inner.delete.bind(inner),
    deleteMany: inner.deleteMany.bind(inner),
    get: (key: string) => {
      wrapper.reads.push(key);
      return inner.get(key);
    },
    list: (prefix: string) => {
      wrapper.listings.push(prefix);
      return inner.list(prefix);
    },
  };
  return wrapper;
}

function capturedWarnings(): { lines: string[]; restore: () => void } {
  const lines: string[] = [];
  const spy = mock.method(log, 'warning', (message: string) => lines.push(message));
  return { lines, restore: () => spy.mock.restore() };
}

describe('the archive catalog', () => {
  it('orders backups by finish time, not by name, as after pg_upgrade starts timeline 1 again', async () => {
    const { directory, storage } = await emptyArchive();
    // The old cluster on timeline 3, then the upgraded one back on timeline 1.
    await putBackup(storage, { BackupName: 'base_000000030000000000000010', FinishTime: '2026-01-01T03:00:00.000Z', Timeline: 3 });
    await putBackup(storage, { BackupName: 'base_000000030000000000000020', FinishTime: '2026-01-02T03:00:00.000Z', Timeline: 3 });
    await putBackup(storage, { BackupName: 'base_000000010000000000000030', FinishTime: '2026-01-03T03:00:00.000Z', SystemIdentifier: '7000000000000000002' });
    // WAL-G's sentinel: not restorable by walship, but it names its cluster.
    mkdirSync(join(directory, 'basebackups_005'), { recursive: true });
    writeFileSync(join(directory, 'basebackups_005', 'base_000000020000000000000005_backup_stop_sentinel.json'), '{"LSN":16777256,"SystemIdentifier":7312345678901234567}');
    // A push that failed halfway: parts, no sentinel.
    await storage.put(partKey('base_000000010000000000000040', 'part_001.tar.zst'), Readable.from([Buffer.alloc(300)]));
    await storage.put(partKey('base_000000010000000000000040', 'part_002.tar.zst'), Readable.from([Buffer.alloc(200)]));

    const counted = watched(storage);
    const warnings = capturedWarnings();
    let catalog: ArchiveCatalog;
    try {
      catalog = await ArchiveCatalog.load(counted, { wal: false });
      assert.deepEqual(catalog.backups().map((backup) => backup.BackupName), [
        'base_000000030000000000000010',
        'base_000000030000000000000020',
        'base_000000010000000000000030',
      ]);
      catalog.backups();
    } finally {
      warnings.restore();
    }
    assert.deepEqual(warnings.lines, [
      'skipping backup base_000000020000000000000005: basebackups_005/base_000000020000000000000005_backup_stop_sentinel.json is not a backup sentinel walship can read: it has no valid LSN and FinishLSN',
    ]);
    assert.deepEqual(counted.listings, ['basebackups_005/'], 'one listing, of the backups only');
    assert.equal(counted.reads.filter((key) => key.endsWith('_backup_stop_sentinel.json')).length, 4, 'each sentinel read once');
    assert.equal(counted.reads.filter((key) => key.endsWith('/metadata.json')).length, 3, "each backup's metadata.json (WAL-G's permanent mark) read once, where there is one");
    assert.equal(counted.reads.length, 7);
    assert.deepEqual(
      catalog.incompleteBackups().map(({ name, objects, bytes }) => ({ name, objects, bytes })),
      [{ name: 'base_000000010000000000000040', objects: 2, bytes: 500 }],
    );
    assert.deepEqual(catalog.backupOrigins(), [
      { backup: 'base_000000010000000000000030', systemIdentifier: '7000000000000000002' },
      { backup: 'base_000000020000000000000005', systemIdentifier: '7312345678901234567' },
      { backup: 'base_000000030000000000000010', systemIdentifier: '7000000000000000001' },
      { backup: 'base_000000030000000000000020', systemIdentifier: '7000000000000000001' },
    ]);
    assert.throws(() => catalog.wal, /loaded without WAL/);

    // LATEST is the backup that finished last, whatever its name.
    const quiet = capturedWarnings();
    try {
      assert.equal((await chooseBackup(storage, 'LATEST', undefined)).BackupName, 'base_000000010000000000000030');
      const before = { kind: 'time' as const, value: '2026-01-02 12:00:00+00', epochMs: Date.parse('2026-01-02T12:00:00Z') };
      assert.equal((await chooseBackup(storage, 'LATEST', before)).BackupName, 'base_000000030000000000000020');
    } finally {
      quiet.restore();
    }
  });

  it('indexes WAL and follows the timeline history across two switches', async () => {
    const { storage } = await emptyArchive();
    // Timeline 1 to 0/5000100, timeline 2 from there to 0/8000000, then timeline 3 (16 MiB segments).
    await putCompressed(storage, 'wal_005/00000002.history.zst', '1\t0/5000100\tno recovery target specified\n');
    await putCompressed(storage, 'wal_005/00000003.history.br', '1\t0/5000100\tno recovery target specified\n\n2\t0/8000000\tat 0/8000000\n', 'brotli');
    const put = async (timeline: number, segments: bigint[], method: 'zstd' | 'none' = 'zstd') => {
      for (const segment of segments) await putCompressed(storage, walKey(segmentName(timeline, segment, 16 * MiB), codecFor(method)), walLongPageHeader(), method);
    };
    await put(1, [1n, 2n, 3n, 4n, 5n]); // 5 holds timeline 1's last bytes, not needed past the switch
    await put(2, [5n, 6n], 'none');
    await put(2, [7n, 8n]); // 8 is timeline 2's partial last segment, archived by the old primary
    await put(3, [8n, 9n, 11n, 12n]);
    await putCompressed(storage, 'wal_005/000000010000000000000005.partial.zst', walLongPageHeader());
    await storage.put('wal_005/README', Readable.from([Buffer.from('not WAL')]));

    const counted = watched(storage);
    const catalog = await ArchiveCatalog.load(counted);
    assert.deepEqual(counted.listings, [''], 'one listing of the whole prefix');
    assert.equal(catalog.segmentSize, 16 * MiB);
    assert.match(catalog.segmentSizeSource, /^the page header of wal_005\/000000010000000000000001\.zst$/);
    assert.deepEqual(catalog.otherObjects.count, 1);

    const { wal } = catalog;
    assert.deepEqual(wal.timelines(), [1, 2, 3]);
    assert.deepEqual(wal.runs(2).map((run) => [run.first, run.last]), [[5n, 8n]], 'one run whatever the extensions');
    assert.deepEqual(wal.runs(3).map((run) => [run.first, run.last]), [[8n, 9n], [11n, 12n]]);

    const graph = catalog.timelines();
    assert.equal(graph.parent(3), 2);
    assert.equal(graph.switchPoint(3), parseLsn('0/8000000'));

    // From timeline 1 at 0/2000028 to 0/C000010 on timeline 3: each timeline up to its switch point,
    // whose segment is read from the next timeline.
    const ranges = catalog.segmentsBetween(3, parseLsn('0/2000028'), parseLsn('0/C000010'));
    assert.deepEqual(ranges, [
      { timeline: 1, first: 2n, last: 4n },
      { timeline: 2, first: 5n, last: 7n },
      { timeline: 3, first: 8n, last: 12n },
    ]);
    assert.deepEqual(ranges.flatMap((range) => wal.gaps(range.timeline, range.first, range.last)), [{ timeline: 3, first: 10n, last: 10n }]);
    // Within one timeline, and starting past the first switch.
    assert.deepEqual(catalog.segmentsBetween(3, parseLsn('0/6000000'), parseLsn('0/7FFFFFF')), [{ timeline: 2, first: 6n, last: 7n }]);
    assert.deepEqual(catalog.segmentsBetween(2, parseLsn('0/9000000'), parseLsn('0/9000001')), [{ timeline: 2, first: 9n, last: 9n }]);
    assert.deepEqual(catalog.segmentsBetween(3, parseLsn('0/9000000'), parseLsn('0/8000000')), []);

    const backup = { Timeline: 2, LSN: '0/6000028', FinishLSN: '0/7000100' } as BackupSentinel;
    assert.deepEqual(catalog.walNeededBy(backup), [{ timeline: 2, first: 6n, last: 7n }]);
  });

  it('takes the segment size from the archive record, else the newest backup, else a stored segment, else 16 MiB with a warning', async () => {
    const { directory, storage } = await emptyArchive();
    const sizeOf = async () => {
      const catalog = await ArchiveCatalog.load(storage);
      return [catalog.segmentSize / MiB, catalog.segmentSizeSource];
    };
    // Nothing to go by, and nothing that needs it.
    assert.deepEqual(await sizeOf(), [16, "PostgreSQL's default (the archive holds no segment)"]);

    await storage.put('wal_005/000000010000000000000001.zst', Readable.from([Buffer.from('not zstd')]));
    const warnings = capturedWarnings();
    try {
      assert.deepEqual(await sizeOf(), [16, "an assumption (16 MiB, PostgreSQL's default)"]);
      await storage.delete('wal_005/000000010000000000000001.zst');
      // With 16 MiB segments this name cannot exist.
      await storage.put('wal_005/000000010000000000000FFF.zst', Readable.from([Buffer.from('not zstd')]));
      await assert.rejects(sizeOf(), /^WalshipError: WAL segment 000000010000000000000FFF does not exist with 16 MiB segments in file:.*, but the segment size comes from an assumption/);
    } finally {
      warnings.restore();
    }
    assert.match(warnings.lines[0] ?? '', /^the WAL segment size of file:.* is recorded nowhere and wal_005\/000000010000000000000001\.zst cannot tell \(.*\): assuming 16 MiB$/);

    await storage.delete('wal_005/000000010000000000000FFF.zst');
    await putCompressed(storage, 'wal_005/0000000100000000000000FF.zst', walLongPageHeader({ segmentSize: MiB }));
    assert.deepEqual(await sizeOf(), [1, 'the page header of wal_005/0000000100000000000000FF.zst']);

    await putBackup(storage, { BackupName: 'base_000000010000000000000002', FinishTime: '2026-01-01T00:00:00.000Z', WalSegmentSize: 2 * MiB });
    await putBackup(storage, { BackupName: 'base_000000010000000000000001', FinishTime: '2026-01-02T00:00:00.000Z', WalSegmentSize: MiB });
    await putBackup(storage, { BackupName: 'base_000000010000000000000003', FinishTime: '2026-01-03T00:00:00.000Z' });
    assert.deepEqual(await sizeOf(), [1, 'backup base_000000010000000000000001']);

    mkdirSync(join(directory, 'walship'));
    writeFileSync(join(directory, 'walship', 'archive.json'), '{"SystemIdentifier":"1","WalSegmentSize":4194304}');
    assert.deepEqual(await sizeOf(), [4, 'walship/archive.json']);
    // A listing of the WAL alone still asks for the record.
    const walOnly = watched(storage);
    const catalog = await ArchiveCatalog.load(walOnly, { backups: false });
    assert.deepEqual([walOnly.listings, catalog.segmentSize], [['wal_005/'], 4 * MiB]);
    assert.ok(walOnly.reads.includes('walship/archive.json'));
  });

  it('tells an archive whose listing found no WAL (copy lists it no further) from one it did not list the WAL of', async () => {
    const { storage } = await emptyArchive();
    await putBackup(storage, { BackupName: 'base_000000010000000000000002', FinishTime: '2026-11-01T02:00:00Z' });
    const withoutWal = { wal: false, dumps: true };
    assert.equal((await ArchiveCatalog.load(storage, withoutWal)).holdsNoWal(), true);
    assert.equal((await ArchiveCatalog.load(storage, { wal: false })).holdsNoWal(), false, 'basebackups_005/ alone was listed');
    await putCompressed(storage, walKey(segmentName(1, 2n, 16 * MiB), codecFor('zstd')), 'segment');
    const catalog = await ArchiveCatalog.load(storage, withoutWal);
    assert.equal(catalog.holdsNoWal(), false);
    assert.deepEqual([catalog.storageUse.wal.objects, catalog.otherObjects.count], [1, 0], 'WAL counted as WAL, though not indexed');
  });

  it('leaves out a damaged history file with a warning, and fails on a storage failure', async () => {
    const { storage } = await emptyArchive();
    await putCompressed(storage, 'wal_005/00000002.history.zst', '1\t0/3000000\tpromoted\n');
    await putCompressed(storage, 'wal_005/00000003.history.zst', '1\tnonsense\n');
    await storage.put('wal_005/00000004.history.zst', Readable.from([Buffer.from('not zstd')]));
    const warnings = capturedWarnings();
    let catalog: ArchiveCatalog;
    try {
      catalog = await ArchiveCatalog.load(storage);
    } finally {
      warnings.restore();
    }
    assert.deepEqual(catalog.timelines().withHistory(), [2]);
    assert.equal(warnings.lines.length, 2);
    assert.match(warnings.lines.sort()[0]!, /^skipping timeline history wal_005\/00000003\.history\.zst: wal_005\/00000003\.history\.zst is not a timeline history file/);
    assert.match(warnings.lines[1]!, /^skipping timeline history wal_005\/00000004\.history\.zst: /);

    const failing: Storage = { ...watched(storage), get: async () => Promise.reject(new Error('connection reset')) };
    await assert.rejects(ArchiveCatalog.load(failing), /connection reset/);
  });
});

describe('the WAL recovery needs along a timeline (wal-integrity.ts, wal-show)', () => {
  it('starts at the oldest backup on the history, follows it across the switch, and gives each segment its status', async () => {
    const { storage } = await emptyArchive();
    // Timeline 2 branched off timeline 1 at 0/5000100 (in segment 5); timeline 1 went on to segment 6.
    await putCompressed(storage, 'wal_005/00000002.history.zst', '1\t0/5000100\tno recovery target specified\n');
    for (const segment of [1n, 2n, 3n, 4n, 5n, 6n]) await putCompressed(storage, walKey(segmentName(1, segment, 16 * MiB), codecFor('zstd')), walLongPageHeader());
    for (const segment of [5n, 6n, 8n, 9n]) await putCompressed(storage, walKey(segmentName(2, segment, 16 * MiB), codecFor('zstd')), walLongPageHeader());
    await putBackup(storage, { BackupName: 'base_000000010000000000000002', LSN: '0/2000028', FinishTime: '2026-12-01T10:00:00Z' });
    await putBackup(storage, { BackupName: 'base_000000010000000000000006', LSN: '0/6000028', FinishTime: '2026-12-01T12:00:00Z' });
    await putBackup(storage, { BackupName: 'base_000000020000000000000008', LSN: '0/8000028', Timeline: 2, FinishTime: '2026-12-01T13:00:00Z' });
    const catalog = await ArchiveCatalog.load(storage);

    // The backup of timeline 1 past the switch is no start for timeline 2.
    assert.deepEqual(catalog.backupsOnHistoryOf(2).map((backup) => backup.BackupName), ['base_000000010000000000000002', 'base_000000020000000000000008']);
    assert.deepEqual(catalog.backupsOnHistoryOf(1).map((backup) => backup.BackupName), ['base_000000010000000000000002', 'base_000000010000000000000006']);

    const runs = (integrity: WalIntegrity) => integrity.runs.map((run) => `${run.timeline}:${run.first}-${run.last} ${run.status}`);
    const toNewest = walIntegrity(catalog, { timeline: 2, windows: { delayed: 0, uploading: 0 } });
    assert.deepEqual([toNewest.from, toNewest.through], [{ segment: 2n, backup: 'base_000000010000000000000002' }, 9n]);
    assert.deepEqual(runs(toNewest), ['1:2-4 FOUND', '2:5-6 FOUND', '2:7-7 MISSING_LOST', '2:8-9 FOUND']);
    assert.deepEqual(toNewest.counts, { FOUND: 7, MISSING_DELAYED: 0, MISSING_UPLOADING: 0, MISSING_LOST: 1 });
    // To a server's position past the newest segment stored.
    const toServer = walIntegrity(catalog, { timeline: 2, through: 11n, windows: { delayed: 1, uploading: 1 } });
    assert.deepEqual(runs(toServer).slice(-3), ['2:8-9 FOUND', '2:10-10 MISSING_UPLOADING', '2:11-11 MISSING_DELAYED']);
    assert.deepEqual(runs(walIntegrity(catalog, { timeline: 2, through: 11n, archivedThrough: 10n, windows: { delayed: 1, uploading: 1 } })).slice(-2), ['2:10-10 MISSING_LOST', '2:11-11 MISSING_DELAYED']);
    // Timeline 1 alone, from its own oldest backup.
    assert.deepEqual(runs(walIntegrity(catalog, { timeline: 1, windows: { delayed: 0, uploading: 0 } })), ['1:2-6 FOUND']);

    const timelines = describeTimelines(catalog);
    assert.deepEqual(
      timelines.map((timeline) => [timeline.timeline, timeline.parent, timeline.switchPoint, timeline.first, timeline.last, timeline.stored, timeline.status, timeline.backups]),
      [
        [1, undefined, undefined, 1n, 6n, 6, 'OK', ['base_000000010000000000000002', 'base_000000010000000000000006']],
        [2, 1, parseLsn('0/5000100'), 5n, 9n, 4, 'LOST_SEGMENTS', ['base_000000020000000000000008']],
      ],
    );
    assert.match(timelinesText(catalog, timelines), /^timeline 2 is missing 000000020000000000000007$/m);
  });
});
