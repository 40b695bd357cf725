// Logical dumps: their keys, the TOC selection that brings back whole
// tables, the catalog's dump sets, retention over them and the age finding.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { deleteDumpSet, type DumpSentinel, writeDumpSentinel } from '../../src/archive/dumps.ts';
import { classifyKey, dumpDatabaseObject, dumpNameAt, dumpObjectExtension, dumpObjectKey, dumpSentinelKey, isDumpName } from '../../src/archive/layout.ts';
import { ConfigError } from '../../src/errors.ts';
import { describeEntry, parseToc, requireSchemas, selectTables } from '../../src/postgres/dump-toc.ts';
import { applyDumpRetention, dumpAgeFinding, dumpGarbage, planDumpRetention } from '../../src/dump/retention.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { assertSafeKey } from '../../src/storage/storage.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8');

function sentinel(name: string, finish: string, extra: Partial<DumpSentinel> = {}): DumpSentinel {
  const object = { UncompressedSize: 10, CompressedSize: 5, SHA256: 'a'.repeat(64), ContentSHA256: 'b'.repeat(64) };
  return {
    DumpName: name, StartTime: finish, FinishTime: finish, Hostname: 'h', PgVersion: 150018, PgDumpVersion: 'pg_dump (PostgreSQL) 15.18',
    SystemIdentifier: '7', UncompressedSize: 20, CompressedSize: 10, Compression: 'zstd', IsPermanent: false, UserData: null,
    Globals: { ...object, Object: 'globals.sql.zst', RolePasswords: true },
    Databases: [{ ...object, Object: 'databases/shop.dump.zst', Database: 'shop', SnapshotTime: finish, PgVersion: 150018, PgDumpVersion: 'x', SystemIdentifier: '7' }],
    WalshipVersion: '0.1.0',
    ...extra,
  };
}

describe('dump keys', () => {
  it('names a set by its start time in UTC, and classifies its sentinel and objects', () => {
    const name = dumpNameAt(new Date('2024-05-01T02:15:07.891Z'));
    assert.equal(name, 'dump_20240501T021507Z');
    assert.ok(isDumpName(name));
    assert.ok(!isDumpName('base_000000010000000000000002'));
    assert.deepEqual(classifyKey(dumpSentinelKey(name)), { kind: 'dump-sentinel', dump: name });
    assert.deepEqual(classifyKey(dumpObjectKey(name, 'databases/shop.dump.zst')), { kind: 'dump-object', dump: name, path: 'databases/shop.dump.zst' });
    assert.deepEqual(classifyKey('dumps_005/not-a-dump/x'), { kind: 'other' });
    assert.equal(dumpObjectExtension('databases/shop.dump.zst'), 'zst');
    assert.equal(dumpObjectExtension('globals.sql'), '');
  });

  it('makes a safe key of any database name', () => {
    for (const database of ['..', '.', 'a/b', 'x y', 'ünï', '%41', 'dump']) {
      const object = dumpDatabaseObject(database, { extension: 'zst' });
      assertSafeKey(dumpObjectKey('dump_20240501T021507Z', object));
      assert.match(object, /^databases\/[A-Za-z0-9_%-]+\.dump\.zst$/);
    }
    assert.notEqual(dumpDatabaseObject('a b', { extension: '' }), dumpDatabaseObject('a%20b', { extension: '' }));
  });
});

describe('the TOC selection for --table', () => {
  const entries = parseToc(fixture('dump-toc.list'), fixture('dump-toc.verbose'));
  const described = (names: readonly { desc: string; schema: string; tag: string }[]) => names.map((entry) => describeEntry(entry as never)).sort();

  it('selects a table with everything that belongs to it, and leaves out other objects that depend on it', () => {
    const selection = selectTables(entries, ['app.coupons']);
    assert.deepEqual(described(selection.entries), [
      'ACL app.TABLE coupons', 'COMMENT app.TABLE coupons', 'CONSTRAINT app.coupons coupons_code_key', 'CONSTRAINT app.coupons coupons_pkey',
      'DEFAULT app.coupons id', 'INDEX app.coupons_v_idx', 'SEQUENCE OWNED BY app.coupons_id_seq', 'SEQUENCE SET app.coupons_id_seq',
      'SEQUENCE app.coupons_id_seq', 'TABLE DATA app.coupons', 'TABLE app.coupons', 'TRIGGER app.coupons t',
    ]);
    assert.deepEqual(described(selection.leftOut), ['FK CONSTRAINT public.other other_id_fkey', 'MATERIALIZED VIEW public.mv', 'VIEW public.vv']);
    // In archive order, as pg_restore -L wants them.
    const ids = selection.entries.map((entry) => fixture('dump-toc.list').indexOf(entry.line));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  });

  it('tells tables of the same name apart by schema, and takes data of materialized views with them', () => {
    assert.deepEqual(described(selectTables(entries, ['coupons'], ['public']).entries), ['TABLE DATA public.coupons', 'TABLE public.coupons']);
    assert.equal(selectTables(entries, ['coupons']).entries.filter((entry) => entry.desc === 'TABLE').length, 2);
    assert.deepEqual(described(selectTables(entries, ['mv']).entries), ['INDEX public.mv_id_idx', 'MATERIALIZED VIEW DATA public.mv', 'MATERIALIZED VIEW public.mv']);
  });

  it('refuses a table or schema the dump does not have, naming what it has', () => {
    assert.throws(() => selectTables(entries, ['nosuch']), (error: Error) => error instanceof ConfigError && /its tables: app\.coupons, public\.coupons, public\.other/.test(error.message));
    assert.throws(() => requireSchemas(entries, ['nosuch']), /its schemas: app, public/);
    requireSchemas(entries, ['app']);
  });
});

describe('dump sets in the catalog, under retention and monitoring', () => {
  it('lists complete sets and folders without a sentinel, and retention deletes sentinel first', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'walship-dump-unit-'));
    try {
      const storage = await FileStorage.open(directory);
      const sets = [sentinel('dump_20240501T021500Z', '2024-05-01T02:20:00Z', { IsPermanent: true }), sentinel('dump_20240502T021500Z', '2024-05-02T02:20:00Z'), sentinel('dump_20240503T021500Z', '2024-05-03T02:20:00Z')];
      for (const set of sets) {
        await storage.put(dumpObjectKey(set.DumpName, 'databases/shop.dump.zst'), Readable.from([Buffer.from('x')]));
        await writeDumpSentinel(storage, set, { createOnly: true });
      }
      await storage.put(dumpObjectKey('dump_20240504T021500Z', 'globals.sql.zst'), Readable.from([Buffer.from('half')]));
      const catalog = await ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true });
      assert.deepEqual(catalog.dumpSets().map((set) => set.DumpName), sets.map((set) => set.DumpName));
      assert.deepEqual(catalog.incompleteDumps().map((folder) => folder.name), ['dump_20240504T021500Z']);
      assert.deepEqual(dumpGarbage(catalog.incompleteDumps(), Date.now() + 3_600_000, 1_800_000).map((folder) => folder.name), ['dump_20240504T021500Z']);
      assert.deepEqual(dumpGarbage(catalog.incompleteDumps(), Date.now(), 1_800_000), []);
      // Loaded for backups only, dump sets are neither read nor counted as foreign objects.
      assert.equal((await ArchiveCatalog.load(storage)).otherObjects.count, 0);

      const plan = planDumpRetention(catalog.dumpSets(), { verb: 'retain', count: 1 });
      assert.deepEqual(plan.map((decision) => [decision.dump.DumpName, decision.action, decision.reason]), [
        ['dump_20240503T021500Z', 'keep', 'the newest dump set'],
        ['dump_20240502T021500Z', 'delete', 'older than the 1 newest'],
        ['dump_20240501T021500Z', 'keep', 'permanent'],
      ]);
      assert.deepEqual(await applyDumpRetention(storage, plan), { sets: 1, objects: 2, bytes: 1 });
      const after = await ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true });
      assert.deepEqual(after.dumpSets().map((set) => set.DumpName), ['dump_20240501T021500Z', 'dump_20240503T021500Z']);
      await deleteDumpSet(storage, 'dump_20240503T021500Z');
      assert.deepEqual((await ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true })).dumpSets().map((set) => set.DumpName), ['dump_20240501T021500Z']);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('plans before and everything, refusing permanent sets without FORCE', () => {
    const sets = [sentinel('dump_20240501T021500Z', '2024-05-01T02:20:00Z', { IsPermanent: true }), sentinel('dump_20240502T021500Z', '2024-05-02T02:20:00Z'), sentinel('dump_20240503T021500Z', '2024-05-03T02:20:00Z')];
    const before = planDumpRetention(sets, { verb: 'before', time: Date.parse('2024-05-03T00:00:00Z') });
    assert.deepEqual(before.map((decision) => decision.action), ['keep', 'delete', 'keep']);
    assert.throws(() => planDumpRetention(sets, { verb: 'everything', force: false }), /permanent dump sets would be deleted \(dump_20240501T021500Z\)/);
    assert.ok(planDumpRetention(sets, { verb: 'everything', force: true }).every((decision) => decision.action === 'delete'));
  });

  it("reports the newest set's age against --max-dump-age", () => {
    const sets = [sentinel('dump_20240501T021500Z', '2024-05-01T02:20:00Z'), sentinel('dump_20240502T021500Z', '2024-05-02T02:20:00Z')];
    const now = Date.parse('2024-05-02T05:20:00Z');
    assert.deepEqual(dumpAgeFinding(sets, now, 26 * 3_600_000), { state: 'OK', message: 'newest dump set dump_20240502T021500Z finished 3:00:00 ago' });
    assert.equal(dumpAgeFinding(sets, now, 3_600_000).state, 'CRITICAL');
    assert.deepEqual(dumpAgeFinding([], now, 3_600_000), { state: 'CRITICAL', message: 'no dump set in the archive' });
  });
});
