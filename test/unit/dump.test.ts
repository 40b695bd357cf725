// Logical dumps: their keys, the TOC selection that brings back whole
// tables, the catalog's dump sets, retention over them and the age finding.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { storeDumpDrillReport } from '../../src/archive/drills.ts';
import { type DumpSentinel, writeDumpSentinel } from '../../src/archive/dumps.ts';
import { classifyKey, dumpDatabaseObject, dumpNameAt, dumpObjectExtension, dumpObjectKey, dumpSentinelKey, isDumpName } from '../../src/archive/layout.ts';
import { ConfigError } from '../../src/errors.ts';
import { dumpClient, startPgDump, startPgRestore, startTocReader, withLargeStdioBuffers } from '../../src/postgres/dump.ts';
import { describeEntry, parseToc, requireSchemas, selectTables } from '../../src/postgres/dump-toc.ts';
import { findOnPath, type RunningProgram } from '../../src/postgres/programs.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';
import type { ReusedReads } from '../../src/util/socket-output.ts';
import { dumpAgeFinding } from '../../src/dump/retention.ts';
import { deleteBackups } from '../../src/retention/delete.ts';
import { parseDuration } from '../../src/retention/gfs.ts';
import { planDumps, type RetentionRequest, type Selection } from '../../src/retention/plan.ts';
import { planText } from '../../src/retention/render.ts';
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

describe('pg_dump and pg_restore through stdbuf', () => {
  it('runs pg_dump with a 64 KiB output buffer and pg_restore with a 1 MiB input buffer where stdbuf is on PATH, and as they are where it is not', { skip: !findOnPath('stdbuf') && 'coreutils\' stdbuf is not installed' }, async () => {
    const bin = mkdtempSync(join(tmpdir(), 'walship-fake-pg-'));
    const empty = mkdtempSync(join(tmpdir(), 'walship-no-stdbuf-'));
    try {
      // Stand-ins that print the buffers stdbuf set up for them (it passes them on in _STDBUF_O and _STDBUF_I).
      for (const program of ['pg_dump', 'pg_dumpall', 'pg_restore', 'psql']) {
        writeFileSync(join(bin, program), '#!/bin/sh\n[ "$1" = --version ] && { echo "pg_dump (PostgreSQL) 15.0"; exit 0; }\nprintf "%s %s" "${_STDBUF_O:-unbuffered}" "${_STDBUF_I:-unbuffered}"\n', { mode: 0o755 });
      }
      const outputOf = async (running: RunningProgram<Readable | ReusedReads> | Promise<RunningProgram<ReusedReads>>) => {
        const program = await running;
        program.input?.end();
        const [output, status] = await Promise.all([text(await new Pipeline(program.output, []).readable()), program.exited]);
        assert.equal(status.code, 0, status.stderr);
        return output;
      };
      const buffersWith = async (path: string) => {
        const client = await withLargeStdioBuffers(dumpClient({ PATH: path }, bin));
        return {
          dump: await outputOf(startPgDump(client, 'shop', '00000003-00000002-1')),
          restore: await outputOf(startPgRestore(client, { target: 'shop', singleTransaction: true })),
          toc: await outputOf(startTocReader(client, 'list')),
        };
      };
      const [KiB64, MiB] = [String(64 << 10), String(1 << 20)];
      assert.deepEqual(await buffersWith('/usr/bin:/bin'), { dump: `${KiB64} unbuffered`, restore: `unbuffered ${MiB}`, toc: `unbuffered ${MiB}` });
      assert.deepEqual(await buffersWith(empty), { dump: 'unbuffered unbuffered', restore: 'unbuffered unbuffered', toc: 'unbuffered unbuffered' });
    } finally {
      rmSync(bin, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

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
  it('lists complete sets and folders without a sentinel; delete --dumps deletes by plan, record and sentinel first, and garbage takes old folders', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'walship-dump-unit-'));
    try {
      const storage = await FileStorage.open(directory);
      const sets = [sentinel('dump_20240501T021500Z', '2024-05-01T02:20:00Z', { IsPermanent: true }), sentinel('dump_20240502T021500Z', '2024-05-02T02:20:00Z'), sentinel('dump_20240503T021500Z', '2024-05-03T02:20:00Z')];
      for (const set of sets) {
        await storage.put(dumpObjectKey(set.DumpName, 'databases/shop.dump.zst'), Readable.from([Buffer.from('x')]));
        await writeDumpSentinel(storage, set, { createOnly: true });
      }
      await storage.put(dumpObjectKey('dump_20240504T021500Z', 'globals.sql.zst'), Readable.from([Buffer.from('half')]));
      const drilled = (dump: string, finished: string) => storeDumpDrillReport(storage, { kind: 'dump', dump, finished_at: finished, result: 'OK', rto_seconds: 1 });
      const prunedReport = await drilled('dump_20240502T021500Z', '2024-05-02T03:00:00.000Z');
      const keptReport = await drilled('dump_20240503T021500Z', '2024-05-03T03:00:00.000Z');
      const load = () => ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true });
      const catalog = await load();
      assert.deepEqual(catalog.dumpSets().map((set) => set.DumpName), sets.map((set) => set.DumpName));
      assert.deepEqual(catalog.incompleteDumps().map((folder) => folder.name), ['dump_20240504T021500Z']);
      // Loaded for backups only, dump sets are neither read nor counted as foreign objects.
      assert.equal((await ArchiveCatalog.load(storage)).otherObjects.count, 0);

      const request = (selection: Selection, incompleteAge = '24h'): RetentionRequest => ({ selection, dumps: true, incompleteAge: parseDuration(incompleteAge, 'test', { allowZero: true }) });
      const options = { now: Date.now(), timeZone: 'UTC' };
      const dryRun = await deleteBackups(storage, request({ verb: 'retain', rules: { last: 1 } }), { ...options, confirm: false });
      assert.deepEqual(dryRun.plan.dumpSets.map((decision) => [decision.dump.DumpName, decision.action, decision.reasons.join(', ')]), [
        ['dump_20240501T021500Z', 'keep', 'permanent'],
        ['dump_20240502T021500Z', 'delete', 'kept by no rule'],
        ['dump_20240503T021500Z', 'keep', 'newest 1, newest complete dump set'],
      ]);
      assert.deepEqual(dryRun.plan.dumpFolders, [], 'retain leaves folders without a sentinel to garbage');
      assert.match(planText(dryRun, 'UTC'), /Plan: delete 1 of 3 dump sets, 0 folders without a sentinel/);
      assert.equal((await load()).dumpSets().length, 3, 'the dry run deletes nothing');

      const confirmed = await deleteBackups(storage, request({ verb: 'retain', rules: { last: 1 } }), { ...options, confirm: true });
      assert.deepEqual({ ...confirmed.deleted, ms: 0 }, { backups: 0, folders: 0, dumpSets: 1, dumpFolders: 1, walFiles: 0, drillReports: 1, objects: 3, bytes: 1, ms: 0 });
      // The deleted set's drill report, more than 90 days old, went with it; the kept set's stays.
      assert.equal(await storage.head(prunedReport), undefined);
      assert.ok(await storage.head(keptReport));
      const after = await load();
      assert.deepEqual(after.dumpSets().map((set) => set.DumpName), ['dump_20240501T021500Z', 'dump_20240503T021500Z']);
      assert.deepEqual(after.incompleteDumps().map((folder) => folder.name), ['dump_20240504T021500Z']);
      assert.deepEqual(after.dumpDeletionsBegun(), [], 'the record goes with the folder');

      // garbage --dumps: the young folder is left (a dump-push may be writing it); with a zero age limit it goes.
      const young = await deleteBackups(storage, request({ verb: 'garbage', scope: 'all' }), { ...options, confirm: true });
      assert.deepEqual(young.plan.dumpFolders.map((folder) => [folder.name, folder.action]), [['dump_20240504T021500Z', 'leave']]);
      assert.equal(young.deleted?.dumpFolders, 0);
      const old = await deleteBackups(storage, request({ verb: 'garbage', scope: 'all' }, '0h'), { ...options, confirm: true });
      assert.equal(old.deleted?.dumpFolders, 1);
      assert.deepEqual((await load()).incompleteDumps(), []);
      assert.equal((await load()).dumpSets().length, 2, 'garbage never deletes a complete dump set');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('plans every verb over generated dump sets by finish time, never by name, refusing what would be unsafe', () => {
    const context = { now: Date.parse('2024-06-01T12:00:00Z'), timeZone: 'UTC' };
    // Thirty daily sets; the one named last finished first (a host whose clock ran ahead), and the 10th is permanent.
    const sets = Array.from({ length: 30 }, (_, day) => {
      const date = new Date(Date.parse('2024-05-01T02:15:00Z') + day * 86_400_000);
      return sentinel(dumpNameAt(date), new Date(date.getTime() + 300_000).toISOString(), { IsPermanent: day === 9 });
    });
    sets[29] = { ...sets[29]!, FinishTime: '2024-04-30T00:00:00.000Z' };
    const plan = (selection: Selection) => planDumps(sets, selection, context);
    const deleted = (selection: Selection) => plan(selection).filter((decision) => decision.action === 'delete').map((decision) => decision.dump.DumpName);

    const retained = plan({ verb: 'retain', rules: { last: 3 } });
    assert.deepEqual(retained.map((decision) => decision.dump.DumpName)[0], 'dump_20240530T021500Z', 'ordered by finish time');
    assert.deepEqual(retained.filter((decision) => decision.action === 'keep').map((decision) => decision.dump.DumpName), ['dump_20240510T021500Z', 'dump_20240527T021500Z', 'dump_20240528T021500Z', 'dump_20240529T021500Z']);
    const weekly = plan({ verb: 'retain', rules: { weekly: 2 } }).filter((decision) => decision.action === 'keep');
    assert.deepEqual(weekly.map((decision) => `${decision.dump.DumpName}: ${decision.reasons.join(', ')}`), [
      'dump_20240510T021500Z: permanent',
      'dump_20240526T021500Z: weekly 2024-W21',
      'dump_20240529T021500Z: weekly 2024-W22, newest complete dump set',
    ]);
    assert.equal(deleted({ verb: 'before', boundary: { kind: 'set', name: 'dump_20240503T021500Z' } }).join(' '), 'dump_20240530T021500Z dump_20240501T021500Z dump_20240502T021500Z');
    assert.deepEqual(deleted({ verb: 'before', boundary: { kind: 'time', text: '2024-05-02 00:00:00+00', epochMs: Date.parse('2024-05-02T00:00:00Z') } }), ['dump_20240530T021500Z', 'dump_20240501T021500Z']);
    assert.deepEqual(deleted({ verb: 'target', name: 'dump_20240505T021500Z', force: false }), ['dump_20240505T021500Z']);
    assert.deepEqual(deleted({ verb: 'garbage', scope: 'all' }), []);
    assert.equal(deleted({ verb: 'everything', force: true }).length, 30);

    assert.throws(() => plan({ verb: 'everything', force: false }), /^ConfigError: delete everything refuses while permanent dump sets exist \(dump_20240510T021500Z\): unmark them with dump-mark --impermanent, or add FORCE/);
    assert.throws(() => plan({ verb: 'target', name: 'dump_20240510T021500Z', force: false }), /dump set dump_20240510T021500Z is permanent: unmark it with dump-mark --impermanent first, or add --force/);
    assert.throws(() => plan({ verb: 'target', name: 'dump_20240529T021500Z', force: false }), /dump set dump_20240529T021500Z is the newest complete dump set, which walship always keeps/);
    assert.throws(() => plan({ verb: 'target', name: 'dump_20990101T000000Z', force: false }), /dump set dump_20990101T000000Z is not among the complete dump sets: dump-list shows their names/);
    assert.throws(() => plan({ verb: 'before', boundary: { kind: 'set', name: 'dump_20990101T000000Z' } }), /is not among the complete dump sets/);
  });

  it("reports the newest set's age against --max-dump-age", () => {
    const sets = [sentinel('dump_20240501T021500Z', '2024-05-01T02:20:00Z'), sentinel('dump_20240502T021500Z', '2024-05-02T02:20:00Z')];
    const now = Date.parse('2024-05-02T05:20:00Z');
    assert.deepEqual(dumpAgeFinding(sets, now, 26 * 3_600_000), { state: 'OK', message: 'newest dump set dump_20240502T021500Z finished 3:00:00 ago' });
    assert.equal(dumpAgeFinding(sets, now, 3_600_000).state, 'CRITICAL');
    assert.deepEqual(dumpAgeFinding([], now, 3_600_000), { state: 'CRITICAL', message: 'no dump set in the archive' });
  });
});
