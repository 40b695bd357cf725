// The pieces of walship drill that need no server: how far recovery can reach
// in an archive (gaps, timeline switches), the judgement of where recovery
// ended, drill report keys and their retention, and what the drill reads
// from PostgreSQL (a --check-sql file, the server log, pg_controldata).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { drillReportsToPrune, lastDrills, lastDumpDrills, storeDrillReport, storeDumpDrillReport } from '../../src/archive/drills.ts';
import { ARCHIVE_IDENTITY_KEY, classifyKey, drillReportKey, parseDrillReportKey, parseDumpDrillReportKey, walKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { judgeRecovery, type RecoveryOutcome } from '../../src/drill/recovery.ts';
import { hasDataChecksums, parseControlData, recoveryMinimumSettings } from '../../src/postgres/control-file.ts';
import { formatLsn, parseLsn } from '../../src/postgres/lsn.ts';
import { RecoveryLog } from '../../src/postgres/server-log.ts';
import { splitSqlScript } from '../../src/postgres/sql-script.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { interruptible, unlessAborted } from '../../src/util/process.ts';

const SEGMENT = 16 << 20;
const BACKUP = 'base_000000010000000000000002';
const root = mkdtempSync(join(tmpdir(), 'walship-drill-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

const put = (storage: Storage, key: string, content: string) => storage.put(key, Readable.from([Buffer.from(content)]));

/** An archive of 16 MiB segments: `segments` per timeline (uncompressed), and history files. */
async function archive(segments: Record<number, number[]>, histories: Record<number, string> = {}): Promise<{ storage: FileStorage; catalog: ArchiveCatalog }> {
  const storage = await FileStorage.open(mkdtempSync(join(root, 'archive-')));
  await put(storage, ARCHIVE_IDENTITY_KEY, JSON.stringify({ SystemIdentifier: '7000000000000000001', WalSegmentSize: SEGMENT }));
  for (const [timeline, numbers] of Object.entries(segments)) {
    for (const segment of numbers) await put(storage, walKey(segmentName(Number(timeline), BigInt(segment), SEGMENT), { extension: '' }), 'segment');
  }
  for (const [timeline, text] of Object.entries(histories)) await put(storage, walKey(`${segmentName(Number(timeline), 0n, SEGMENT).slice(0, 8)}.history`, { extension: '' }), text);
  return { storage, catalog: await ArchiveCatalog.load(storage) };
}

const name = (timeline: number, segment: number) => segmentName(timeline, BigInt(segment), SEGMENT);

describe('how far recovery can reach in the archive', () => {
  it('stops at the first gap, and says where the archive ends', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4, 6, 7, 8] });
    const reach = catalog.recoveryReach(1, parseLsn('0/2000028'));
    assert.deepEqual([reach.last?.name, reach.missing?.name, reach.end?.name], [name(1, 4), name(1, 5), name(1, 8)]);
    assert.deepEqual(catalog.wal.lastStoredIn(1, 2n, 5n), 4n);
    assert.deepEqual(catalog.wal.lastStoredIn(1, 5n, 5n), undefined);
    assert.deepEqual(catalog.wal.lastStoredIn(1, 0n, 100n), 8n);
  });

  it('reaches the end of an archive without a gap, where nothing is missing', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4] });
    const reach = catalog.recoveryReach(1, parseLsn('0/2000028'));
    assert.deepEqual([reach.last?.name, reach.missing, reach.end?.name], [name(1, 4), undefined, name(1, 4)]);
  });

  it("follows a timeline switch, reading the switch point's segment from the new timeline", async () => {
    const { catalog } = await archive({ 1: [2, 3, 4, 5], 2: [5, 6, 7, 9] }, { 2: '1\t0/5000100\tno recovery target specified\n' });
    const reach = catalog.recoveryReach(2, parseLsn('0/2000028'));
    assert.deepEqual([reach.last?.name, reach.missing?.name, reach.end?.name], [name(2, 7), name(2, 8), name(2, 9)]);
    // Timeline 1 alone runs on past the switch point.
    assert.deepEqual(catalog.recoveryReach(1, parseLsn('0/2000028')).last?.name, name(1, 5));
  });

  it('has nothing to reach when the first segment is missing', async () => {
    const { catalog } = await archive({ 1: [3, 4] });
    const reach = catalog.recoveryReach(1, parseLsn('0/2000028'));
    assert.deepEqual([reach.last, reach.missing?.name, reach.end?.name], [undefined, name(1, 2), name(1, 4)]);
  });
});

describe('judging where recovery ended', () => {
  const ready: RecoveryOutcome = { ready: true, restoredSegments: 3 };
  const facts = (outcome: RecoveryOutcome, lsn?: string, target?: { kind: 'lsn'; value: bigint }) => ({
    fromLsn: parseLsn('0/2000028'),
    timeline: 1,
    target,
    outcome,
    end: lsn === undefined ? undefined : { timeline: 1, lsn: parseLsn(lsn) },
  });

  it('OK at the end of the archive, also when the last record is a segment switch', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4] });
    for (const lsn of ['0/4000120', '0/5000000']) {
      const judgement = judgeRecovery(catalog, facts(ready, lsn));
      assert.equal(judgement.state, 'OK', judgement.message);
      assert.match(judgement.message, new RegExp(`^recovery reached the end of the archive at ${lsn} \\(segment ${name(1, 4)}, timeline 1\\)$`));
    }
  });

  it('CRITICAL when recovery ended at a gap the archive has WAL after, naming the first missing segment', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4, 6, 7] });
    const judgement = judgeRecovery(catalog, facts(ready, '0/4FFFF00'));
    assert.equal(judgement.state, 'CRITICAL');
    assert.equal(judgement.message, `recovery stopped at 0/4FFFF00 (segment ${name(1, 4)}, timeline 1): segment ${name(1, 5)} is missing from the archive, which holds WAL up to ${name(1, 7)}`);
  });

  it('CRITICAL when recovery ended before the end of the archive without a gap (WAL it could not replay)', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4, 5] });
    const judgement = judgeRecovery(catalog, facts(ready, '0/3000100'));
    assert.equal(judgement.state, 'CRITICAL');
    assert.match(judgement.message, new RegExp(`before the end of the archive in segment ${name(1, 5)}: the segment after ${name(1, 3)} could not be replayed$`));
  });

  it('CRITICAL when the server stopped, with where redo ended and the gap', async () => {
    const { catalog } = await archive({ 1: [2, 3, 5] });
    const stopped: RecoveryOutcome = { ready: false, restoredSegments: 2, reason: 'recovery ended before configured recovery target was reached', redoDoneAt: parseLsn('0/3FFFFD0') };
    const judgement = judgeRecovery(catalog, facts(stopped));
    assert.equal(judgement.state, 'CRITICAL');
    assert.equal(judgement.message, `recovery stopped at 0/3FFFFD0: recovery ended before configured recovery target was reached; segment ${name(1, 4)} is missing from the archive, which holds WAL up to ${name(1, 5)}`);
  });

  it('with an LSN target: OK at or past it, CRITICAL before it', async () => {
    const { catalog } = await archive({ 1: [2, 3, 4] });
    const target = { kind: 'lsn' as const, value: parseLsn('0/3000200') };
    assert.equal(judgeRecovery(catalog, facts(ready, '0/3000230', target)).state, 'OK');
    assert.match(judgeRecovery(catalog, facts(ready, '0/3000100', target)).message, /^recovery stopped at 0\/3000100 .*, before the target LSN 0\/3000200$/);
  });
});

describe('drill reports in storage', () => {
  it('are named by time, then backup, and read back from the key alone', () => {
    const time = new Date('2026-12-01T20:58:13.589Z');
    const key = drillReportKey(BACKUP, time);
    assert.equal(key, `walship/drills/20261201T205813.589Z_${BACKUP}.json`);
    assert.deepEqual(parseDrillReportKey(key), { backup: BACKUP, time });
    assert.deepEqual(classifyKey(key), { kind: 'walship', path: key.slice('walship/'.length) });
    for (const other of ['walship/archive.json', 'walship/drills/notes.txt', `walship/drills/2026_${BACKUP}.json`]) assert.equal(parseDrillReportKey(other), undefined);
  });

  it("are kept while their backup exists, then for 90 days after the drill; the newest is always kept", () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const report = (backup: string, daysAgo: number) => {
      const time = new Date(now.getTime() - daysAgo * 86_400_000);
      return { key: drillReportKey(backup, time), backup, time };
    };
    const kept = 'base_000000010000000000000009';
    const gone = 'base_000000010000000000000004';
    const reports = [report(kept, 200), report(gone, 120), report(gone, 91), report(gone, 89), report(gone, 100)];
    assert.deepEqual(drillReportsToPrune(reports, new Set([kept]), now).map((pruned) => pruned.key).sort(), [reports[1]!.key, reports[2]!.key, reports[4]!.key].sort());
    // The newest of all stays, even when old and of a deleted backup.
    assert.deepEqual(drillReportsToPrune([report(gone, 300), report(gone, 200)], new Set(), now).map((pruned) => pruned.key), [report(gone, 300).key]);
  });

  it('are stored create-only, listed by the catalog, and the newest of each backup read for backup-list', async () => {
    const { storage } = await archive({ 1: [2, 3] });
    const summary = (finished: string, result: string) => ({ backup: BACKUP, finished_at: finished, result, rto_seconds: 12.5 });
    const first = await storeDrillReport(storage, summary('2026-11-01T00:00:00.000Z', 'CRITICAL'));
    const second = await storeDrillReport(storage, summary('2026-11-08T00:00:00.000Z', 'OK'));
    await assert.rejects(storeDrillReport(storage, summary('2026-11-08T00:00:00.000Z', 'OK')), /already|exists/i);
    const catalog = await ArchiveCatalog.load(storage);
    assert.deepEqual(catalog.drillReports().map((report) => report.key), [first, second]);
    // Their backup has no sentinel here, and both are past 90 days of the given time: the older goes.
    assert.deepEqual(catalog.drillReportsToPrune(undefined, new Date('2027-06-01T00:00:00Z')).map((report) => report.key), [first]);
    assert.deepEqual(catalog.drillReportsToPrune([BACKUP], new Date('2027-06-01T00:00:00Z')), []);
    assert.deepEqual(await lastDrills(storage), new Map([[BACKUP, { ...summary('2026-11-08T00:00:00.000Z', 'OK'), report: second }]]));
  });

  it("keeps dump drill reports apart: never a backup's last drill or retention's, and the newest of each dump set read for dump-list", async () => {
    const { storage } = await archive({ 1: [2, 3] });
    const dump = 'dump_20261101T021500Z';
    const summary = (finished: string, result: string) => ({ kind: 'dump' as const, dump, finished_at: finished, result, rto_seconds: 4 });
    const backupReport = await storeDrillReport(storage, { backup: BACKUP, finished_at: '2026-11-01T00:00:00.000Z', result: 'OK', rto_seconds: 3 });
    await storeDumpDrillReport(storage, summary('2026-11-02T00:00:00.000Z', 'CRITICAL'));
    const newest = await storeDumpDrillReport(storage, summary('2026-11-09T00:00:00.000Z', 'OK'));
    assert.equal(newest, `walship/drills/20261109T000000.000Z_${dump}.json`);
    assert.equal(parseDrillReportKey(newest), undefined);
    assert.deepEqual(parseDumpDrillReportKey(newest), { dump, time: new Date('2026-11-09T00:00:00.000Z') });
    assert.equal(parseDumpDrillReportKey(backupReport), undefined);
    assert.deepEqual([...(await lastDrills(storage)).keys()], [BACKUP]);
    assert.deepEqual((await ArchiveCatalog.load(storage)).drillReports().map((report) => report.key), [backupReport]);
    assert.deepEqual(await lastDumpDrills(storage), new Map([[dump, { ...summary('2026-11-09T00:00:00.000Z', 'OK'), report: newest }]]));
  });

  it("a damaged newest report leaves its backup without a last drill, and the others are read", async () => {
    const { storage } = await archive({ 1: [2, 3] });
    const other = 'base_000000010000000000000003';
    const good = await storeDrillReport(storage, { backup: other, finished_at: '2026-11-08T00:00:00.000Z', result: 'OK', rto_seconds: 3 });
    await put(storage, drillReportKey(BACKUP, new Date('2026-11-09T00:00:00.000Z')), '{"backup": "trunc');
    const drills = await lastDrills(storage);
    assert.deepEqual([...drills.keys()], [other]);
    assert.equal(drills.get(other)!.report, good);
  });
});

describe('what the drill reads from PostgreSQL', () => {
  it('splits a --check-sql file into statements, with \\c switching databases', () => {
    const script = `-- orders made today
SELECT count(*) > 0 FROM orders WHERE note <> 'a;b' AND tag = E'it\\'s;' ;
/* a /* nested */ comment; */
SELECT $$;$$ = $tag$;$tag$;
\\c shop
  SELECT "weird;name" IS NOT NULL FROM t
`;
    assert.deepEqual(splitSqlScript(script, 'checks.sql'), [
      { database: undefined, line: 2, text: "SELECT count(*) > 0 FROM orders WHERE note <> 'a;b' AND tag = E'it\\'s;'" },
      { database: undefined, line: 4, text: 'SELECT $$;$$ = $tag$;$tag$' },
      { database: 'shop', line: 6, text: 'SELECT "weird;name" IS NOT NULL FROM t' },
    ]);
    assert.throws(() => splitSqlScript('SELECT 1;\n\\set x 1\n', 'checks.sql'), /^ConfigError: checks.sql, line 2: "\\set x 1" is not supported/);
    assert.throws(() => splitSqlScript("SELECT 'open;\n", 'checks.sql'), /checks.sql, line 1: a string is never closed/);
  });

  it("follows recovery in the server log as it grows, whatever the line prefix", async () => {
    const logFile = join(root, 'server.log');
    const log = new RecoveryLog(logFile);
    assert.deepEqual(await log.read(), { restoredSegments: 0, ready: false });
    writeFileSync(logFile, '2026-12-01 10:00:00.000 UTC [7] LOG:  restored log file "000000010000000000000002" from archive\n[7] LOG:  consistent recovery state reached at 0/2000100\nLOG:  restored log file "0000');
    assert.deepEqual(await log.read(), { restoredSegments: 1, ready: false, consistentAt: parseLsn('0/2000100') });
    appendFileSync(logFile, '00010000000000000003" from archive\nLOG:  restored log file "00000002.history" from archive\nLOG:  restored log file "000000010000000000000003" from archive\nLOG:  redo done at 0/3000060 system usage: CPU: user: 0.00 s\n');
    appendFileSync(logFile, 'FATAL:  recovery ended before configured recovery target was reached\nLOG:  database system is ready to accept read-only connections\n');
    const stopped = await log.read();
    assert.deepEqual(stopped, { restoredSegments: 2, ready: false, consistentAt: parseLsn('0/2000100'), redoDoneAt: parseLsn('0/3000060'), fatal: 'recovery ended before configured recovery target was reached' });
    appendFileSync(logFile, 'LOG:  database system is ready to accept connections\n');
    assert.equal((await log.read()).ready, true);
    assert.equal(formatLsn(stopped.redoDoneAt!), '0/3000060');
  });

  it("reads pg_controldata's report: the settings recovery needs, and data page checksums", () => {
    const report = `pg_control version number:            1300
max_connections setting:              250
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           5
max_locks_per_xact setting:           128
Data page checksum version:           1
`;
    const data = parseControlData(report);
    assert.deepEqual(recoveryMinimumSettings(data), { max_connections: 250, max_worker_processes: 8, max_wal_senders: 10, max_prepared_transactions: 5, max_locks_per_transaction: 128 });
    assert.equal(hasDataChecksums(data), true);
    assert.equal(hasDataChecksums(parseControlData(report.replace('version:           1', 'version:           0'))), false);
    assert.throws(() => recoveryMinimumSettings(parseControlData('pg_control version number: 1300\n')), /does not show "max_connections setting"/);
  });
});

describe('interruption', () => {
  it('keeps its handler while the work cleans up after the first signal, so no other handler ends the process', async () => {
    const others = new Set(process.listeners('SIGTERM'));
    const own = () => process.listeners('SIGTERM').filter((listener) => !others.has(listener));
    let cleanedUp = false;
    await interruptible(async (signal) => {
      assert.equal(own().length, 1);
      // As the signal would, without waking the test runner's own handlers.
      (own()[0] as (signal: NodeJS.Signals) => void)('SIGTERM');
      assert.ok(signal.aborted);
      assert.equal(own().length, 1, 'the handler left with the first signal');
      cleanedUp = true;
    });
    assert.ok(cleanedUp);
    assert.equal(own().length, 0);
  });

  it('unlessAborted rejects at once when the signal aborts, and passes results through otherwise', async () => {
    const controller = new AbortController();
    assert.equal(await unlessAborted(controller.signal, Promise.resolve(5), () => new Error('stopped')), 5);
    const pending = unlessAborted(controller.signal, new Promise(() => undefined), () => new Error('stopped'));
    controller.abort();
    await assert.rejects(pending, /^Error: stopped$/);
  });

  it("Config.with overrides a setting as the environment would", () => {
    const config = new Config({ WALSHIP_SPOOL_DIR: '/a' }, new Map([['WALG_FILE_PREFIX', '/archive']]));
    const scratch = config.with({ WALSHIP_SPOOL_DIR: '/scratch/spool' });
    assert.equal(scratch.get('WALSHIP_SPOOL_DIR'), '/scratch/spool');
    assert.equal(scratch.get('WALG_FILE_PREFIX'), '/archive');
    assert.equal(config.get('WALSHIP_SPOOL_DIR'), '/a');
  });
});
