// The retention plan beyond the GFS rules: WAL-G's verbs and what they
// refuse, the WAL that goes (and what is always kept), folders without a
// sentinel, and the order by finish time, never by name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { classifyKey } from '../../src/archive/layout.ts';
import { WalIndexBuilder } from '../../src/archive/wal-index.ts';
import { formatLsn, segmentStartLsn } from '../../src/postgres/lsn.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { parseDuration } from '../../src/retention/gfs.ts';
import { type BackupDecision, planBackups, planFolders, planWal, type RetentionRequest, type Selection, walSegmentGoes, type WalSource } from '../../src/retention/plan.ts';

const SEGMENT = 16 << 20;
const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T12:00:00Z');
const context = { now: NOW, timeZone: 'UTC' };

/** A backup on `timeline` starting in segment `start`, consistent two segments later, finished `daysAgo` days before NOW. */
function backup(start: number, daysAgo: number, fields: Partial<BackupSentinel> = {}): BackupSentinel {
  const timeline = fields.Timeline ?? 1;
  return {
    BackupName: `base_${segmentName(timeline, BigInt(start), SEGMENT)}`,
    LSN: formatLsn(segmentStartLsn(BigInt(start), SEGMENT) + 40n),
    FinishLSN: formatLsn(segmentStartLsn(BigInt(start + 2), SEGMENT) + 100n),
    Timeline: timeline,
    FinishTime: new Date(NOW - daysAgo * DAY).toISOString(),
    SystemIdentifier: '7000000000000000001',
    IsPermanent: false,
    CompressedSize: 1000,
    ...fields,
  } as BackupSentinel;
}

const request = (selection: Selection, extra: Partial<RetentionRequest> = {}): RetentionRequest => ({ selection, incompleteAge: parseDuration('24h', 'test'), ...extra });
const actions = (decisions: BackupDecision[]) => decisions.map((decision) => `${decision.action} ${decision.backup.BackupName.slice(-2)}: ${decision.reasons.join(', ')}`);

/** The catalog's WAL side: segments 1 to `last` of timeline 1 stored, 100 bytes each, and whatever else is given. */
function walSource(segments: [timeline: number, first: number, last: number][], extra: Partial<WalSource> = {}): WalSource {
  const builder = new WalIndexBuilder();
  for (const [timeline, first, last] of segments) {
    for (let segment = first; segment <= last; segment++) {
      const key = `wal_005/${segmentName(timeline, BigInt(segment), SEGMENT)}.zst`;
      const kind = classifyKey(key);
      if (kind.kind === 'wal') builder.add(kind.file, kind.extension, { key, size: 100, lastModified: new Date(0) });
    }
  }
  const wal = builder.finish(SEGMENT);
  return {
    wal,
    walNeededBy: (sentinel) => [{ timeline: sentinel.Timeline, first: BigInt(parseInt(sentinel.LSN.split('/')[1]!, 16)) / BigInt(SEGMENT), last: BigInt(parseInt(sentinel.FinishLSN.split('/')[1]!, 16)) / BigInt(SEGMENT) }],
    backupOrigins: () => [{ backup: 'base_x', systemIdentifier: '7000000000000000001' }],
    unreadableSentinels: () => [],
    ...extra,
  };
}

describe('the retention plan', () => {
  it('orders backups by finish time, not by name: after pg_upgrade, retain keeps the new timeline-1 backups', () => {
    const old = [backup(0x10, 9, { Timeline: 3 }), backup(0x20, 8, { Timeline: 3 })];
    const upgraded = [backup(0x30, 2, { SystemIdentifier: '7000000000000000002' }), backup(0x31, 1, { SystemIdentifier: '7000000000000000002' })];
    const decisions = planBackups([...upgraded, ...old], { verb: 'retain', rules: { last: 2 } }, context);
    assert.deepEqual(actions(decisions), [
      'delete 10: kept by no rule',
      'keep 20: newest complete backup',
      'keep 30: newest 2',
      'keep 31: newest 2, newest complete backup',
    ]);
  });

  it('honours each verb, and refuses what would delete what must stay, before anything is deleted', () => {
    const backups = [backup(2, 5), backup(4, 4, { IsPermanent: true }), backup(6, 3), backup(8, 2), backup(10, 1)];
    const plan = (selection: Selection) => actions(planBackups(backups, selection, context));
    assert.deepEqual(plan({ verb: 'before', boundary: { kind: 'set', name: backups[3]!.BackupName } }), [
      'delete 02: finished before base_000000010000000000000008',
      'keep 04: permanent',
      'delete 06: finished before base_000000010000000000000008',
      'keep 08: from base_000000010000000000000008 on',
      'keep 0A: from base_000000010000000000000008 on, newest complete backup',
    ]);
    const inFuture = plan({ verb: 'before', boundary: { kind: 'time', text: '2027-01-01 00:00:00+00', epochMs: Date.parse('2027-01-01T00:00:00Z') } });
    assert.deepEqual(inFuture.map((line) => line.slice(0, 7)), ['delete ', 'keep 04', 'delete ', 'delete ', 'keep 0A'], 'the newest stays');
    assert.deepEqual(plan({ verb: 'retain', rules: { last: 1 }, after: { kind: 'time', text: 'three days ago', epochMs: NOW - 3 * DAY } }).map((line) => line.slice(0, 7)), [
      'delete ', 'keep 04', 'keep 06', 'keep 08', 'keep 0A',
    ]);
    assert.deepEqual(plan({ verb: 'target', name: backups[2]!.BackupName, force: false }).map((line) => line.slice(0, 7)), ['keep 02', 'keep 04', 'delete ', 'keep 08', 'keep 0A']);
    assert.match(plan({ verb: 'target', name: backups[1]!.BackupName, force: true })[1]!, /^delete 04: the target$/);
    assert.deepEqual(plan({ verb: 'everything', force: true }).map((line) => line.slice(0, 7)), ['delete ', 'delete ', 'delete ', 'delete ', 'delete ']);
    assert.ok(plan({ verb: 'garbage', scope: 'all' }).every((line) => line.startsWith('keep')));

    const refused = (selection: Selection, message: RegExp) => assert.throws(() => planBackups(backups, selection, context), message);
    refused({ verb: 'target', name: backups[1]!.BackupName, force: false }, /^ConfigError: backup base_000000010000000000000004 is permanent: unmark it with backup-mark --impermanent first, or add --force/);
    refused({ verb: 'target', name: backups[4]!.BackupName, force: true }, /is the newest complete backup, which walship always keeps/);
    refused({ verb: 'target', name: 'base_0000000100000000000000FF', force: false }, /^ConfigError: backup base_0000000100000000000000FF is not among the complete backups: backup-list shows their names$/);
    refused({ verb: 'before', boundary: { kind: 'set', name: 'base_0000000100000000000000FF' } }, /is not among the complete backups/);
    refused({ verb: 'everything', force: false }, /^ConfigError: delete everything refuses while permanent backups exist \(base_000000010000000000000004\): unmark them with backup-mark --impermanent, or add FORCE/);
    refused({ verb: 'retain', rules: {} }, /delete retain needs a rule/);
  });

  it('deletes the WAL below the oldest kept backup but a permanent backup\'s own, on every timeline, never history', () => {
    const backups = [backup(3, 5), backup(10, 4, { IsPermanent: true }), backup(20, 3), backup(30, 2), backup(35, 1, { Timeline: 2 })];
    const decisions = planBackups(backups, { verb: 'retain', rules: { last: 2 } }, context);
    const wal = planWal(walSource([[1, 1, 33], [2, 33, 40]]), decisions, request({ verb: 'retain', rules: { last: 2 } }), context);
    assert.equal(wal.keptBecause, undefined);
    assert.equal(wal.below, 30n);
    assert.deepEqual(wal.keptFrom, { segment: segmentName(1, 30n, SEGMENT), backup: backups[3]!.BackupName });
    assert.deepEqual(wal.protected, [{ timeline: 1, first: 10n, last: 12n, backup: backups[1]!.BackupName }]);
    assert.deepEqual(wal.deletions, [{ timeline: 1, first: 1n, last: 29n, segments: 26, bytes: 2600, bytesEstimated: true }]);
    assert.equal(decisions[1]!.toItsEndOnly, 'permanent: its own WAL is kept');
    for (const [timeline, segment, goes] of [[1, 1n, true], [1, 9n, true], [1, 10n, false], [1, 12n, false], [1, 13n, true], [1, 29n, true], [1, 30n, false], [2, 29n, true], [2, 33n, false]] as const) {
      assert.equal(walSegmentGoes(wal, timeline, segment), goes, `${timeline}/${segment}`);
    }
  });

  it('keeps point-in-time recovery from every kept backup, or within --pitr-window, and says which backups lose it', () => {
    const backups = [backup(3, 40), backup(10, 20), backup(20, 10), backup(30, 1)];
    const selection: Selection = { verb: 'retain', rules: { last: 4 } };
    const everyOne = planWal(walSource([[1, 1, 33]]), planBackups(backups, selection, context), request(selection), context);
    assert.equal(everyOne.below, 3n);
    const decisions = planBackups(backups, selection, context);
    const windowed = planWal(walSource([[1, 1, 33]]), decisions, request(selection, { pitrWindow: parseDuration('14d', 'test') }), context);
    assert.equal(windowed.below, 20n);
    assert.deepEqual(windowed.protected.map((range) => [range.first, range.last]), [[3n, 5n], [10n, 12n]]);
    assert.deepEqual(decisions.map((decision) => decision.toItsEndOnly), [
      'finished before the --pitr-window of 14d: its own WAL is kept',
      'finished before the --pitr-window of 14d: its own WAL is kept',
      undefined,
      undefined,
    ]);
    // The newest backup keeps point-in-time recovery whatever the window.
    const old = planWal(walSource([[1, 1, 33]]), planBackups([backup(3, 40), backup(10, 30)], selection, context), request(selection, { pitrWindow: parseDuration('1d', 'test') }), context);
    assert.equal(old.below, 10n);
  });

  it('keeps all WAL when it cannot tell what is old, and says why in one line', () => {
    const backups = [backup(3, 5), backup(20, 1)];
    const selection: Selection = { verb: 'retain', rules: { last: 1 } };
    const decisions = planBackups(backups, selection, context);
    const clusters = planWal(walSource([[1, 1, 25]], {
      backupOrigins: () => [{ backup: 'a', systemIdentifier: '1' }, { backup: 'b', systemIdentifier: '2' }],
    }), decisions, request(selection), context);
    assert.equal(clusters.keptBecause, 'backups of 2 clusters share this prefix (system identifiers 1, 2), and WAL names do not tell which cluster wrote a segment: archive each cluster into a prefix of its own');
    assert.deepEqual(clusters.deletions, []);
    assert.equal(walSegmentGoes(clusters, 1, 1n), false);
    const unreadable = planWal(walSource([[1, 1, 25]], { unreadableSentinels: () => [{ backup: 'base_000000010000000000000002', reason: 'not valid JSON' }] }), decisions, request(selection), context);
    assert.match(unreadable.keptBecause!, /^the sentinel of base_000000010000000000000002 cannot be read \(not valid JSON\)/);
    assert.match(planWal(walSource([[1, 1, 25]]), [], request({ verb: 'garbage', scope: 'all' }), context).keptBecause!, /no complete backup/);
    assert.match(planWal(walSource([[1, 1, 25]]), decisions, request({ verb: 'target', name: 'x', force: false }), context).keptBecause!, /never deletes WAL/);
    const everything = planWal(walSource([[1, 1, 25], [2, 20, 22]]), decisions, request({ verb: 'everything', force: false }), context);
    assert.deepEqual(everything.deletions.map((deletion) => [deletion.timeline, deletion.segments, deletion.bytesEstimated]), [[1, 25, false], [2, 3, false]]);
    assert.equal(walSegmentGoes(everything, 1, 25n), true);
  });

  it('finishes folders an earlier delete began, and removes incomplete ones only when old enough and asked to', () => {
    const folders = [
      { name: 'base_000000010000000000000001', objects: 3, bytes: 300, newest: new Date(NOW - 2 * DAY) },
      { name: 'base_000000010000000000000002', objects: 1, bytes: 100, newest: new Date(NOW - 60_000) },
      { name: 'base_000000010000000000000003', objects: 2, bytes: 200, newest: new Date(NOW - 60_000) },
    ];
    const begun = new Set(['base_000000010000000000000003']);
    const summary = (selection: Selection, age = '24h') => planFolders(folders, begun, request(selection, { incompleteAge: parseDuration(age, 'test', { allowZero: true }) }), NOW).map((folder) => `${folder.action} ${folder.name.slice(-1)}: ${folder.reason}`);
    assert.deepEqual(summary({ verb: 'retain', rules: { last: 1 } }), ['delete 3: left by an earlier delete, which removed its sentinel']);
    assert.deepEqual(summary({ verb: 'garbage', scope: 'all' }), [
      'delete 1: no sentinel: an incomplete backup',
      'leave 2: no sentinel, but its newest object is younger than 24h: a backup-push may still be writing it',
      'delete 3: left by an earlier delete, which removed its sentinel',
    ]);
    assert.deepEqual(summary({ verb: 'garbage', scope: 'all' }, '0h').map((line) => line.slice(0, 8)), ['delete 1', 'delete 2', 'delete 3']);
    assert.deepEqual(summary({ verb: 'garbage', scope: 'archives' }).map((line) => line.slice(0, 8)), ['delete 3']);
    assert.deepEqual(summary({ verb: 'everything', force: false }).map((line) => line.slice(0, 8)), ['delete 1', 'leave 2:', 'delete 3']);
  });
});
