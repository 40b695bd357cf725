// GFS end to end: 26 real backups of a PostgreSQL 15 whose stored finish
// times are then spread over more than a year (the sentinels rewritten), one
// of them permanent. delete retain --keep-daily 7 --keep-weekly 4
// --keep-monthly 12 in Europe/Berlin keeps exactly the expected set, the
// permanent backup still restores with its own WAL, and the WAL deleted is
// exactly what no kept backup needs.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifyKey, metadataKey, sentinelKey } from '../../src/archive/layout.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { segmentNumberOfName } from '../../src/postgres/wal-name.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';
import { listing } from '../support/retention.ts';

const SEGMENT_SIZE = 1 << 20;

/** Finish times, oldest first, in UTC; Berlin is an hour ahead in winter, two in summer. */
const SCHEDULE = [
  '2024-12-20T10:00:00Z', //  1 December 2024: deleted (twelve newer months have backups)
  '2025-01-10T10:00:00Z', //  2 permanent
  '2025-01-25T10:00:00Z', //  3 January 2025: deleted
  '2025-02-14T10:00:00Z', //  4 monthly 2025-02, the oldest month kept
  '2025-03-14T10:00:00Z', //  5 monthly 2025-03 (no backup in April: it takes no month)
  '2025-05-02T10:00:00Z', //  6 monthly 2025-05
  '2025-06-06T10:00:00Z', //  7
  '2025-07-07T10:00:00Z', //  8
  '2025-08-08T10:00:00Z', //  9
  '2025-09-09T10:00:00Z', // 10
  '2025-10-10T10:00:00Z', // 11
  '2025-11-11T10:00:00Z', // 12
  '2025-12-12T10:00:00Z', // 13 monthly 2025-12
  '2026-01-05T10:00:00Z', // 14 week 2: deleted
  '2026-01-14T10:00:00Z', // 15 week 3: deleted
  '2026-01-21T10:00:00Z', // 16 weekly 2026-W04
  '2026-01-28T10:00:00Z', // 17 weekly 2026-W05, monthly 2026-01
  '2026-02-02T10:00:00Z', // 18 Monday of week 6: deleted (its day's one, but the eighth day back)
  '2026-02-03T10:00:00Z', // 19 daily
  '2026-02-04T22:30:00Z', // 20 daily 2026-02-04 (23:30 in Berlin)
  '2026-02-04T23:30:00Z', // 21 daily 2026-02-05 (00:30 in Berlin, still the 4th in UTC)
  '2026-02-06T10:00:00Z', // 22 daily
  '2026-02-07T10:00:00Z', // 23 daily
  '2026-02-08T10:00:00Z', // 24 daily, weekly 2026-W06 (Sunday)
  '2026-02-09T08:00:00Z', // 25 the same day as the next: deleted
  '2026-02-09T12:00:00Z', // 26 daily, weekly 2026-W07, monthly 2026-02, the newest
];
const PERMANENT = 2;
const DELETED = [1, 3, 14, 15, 18, 25];

interface Listed {
  backup_name: string;
  start_lsn: string;
  finish_lsn: string;
  finish_time: string;
}

describe('GFS retention end to end: 26 real backups over more than a year', () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let backups: Listed[];
  const cleanups: (() => Promise<void> | void)[] = [];
  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary) } });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-gfs-');
    env = { WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', TZ: 'Europe/Berlin', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, backup int NOT NULL)');
    for (let index = 1; index <= SCHEDULE.length; index++) {
      await primary.sql(`INSERT INTO marker (backup) SELECT ${index} FROM generate_series(1, 10)`);
      const pushed = await walship(['backup-push', ...(index === PERMANENT ? ['--permanent'] : [])]);
      assert.equal(pushed.code, 0, pushed.stderr);
    }
    await primary.sql('INSERT INTO marker (backup) VALUES (0)');
    await primary.switchAndWaitArchived();
    backups = JSON.parse((await walship(['backup-list', '--json'])).stdout) as Listed[];
    assert.equal(backups.length, SCHEDULE.length);
    // Spread the backups over the schedule: the sentinel and metadata.json say when each finished.
    backups.forEach((backup, index) => {
      for (const key of [sentinelKey(backup.backup_name), metadataKey(backup.backup_name)]) {
        const path = join(archive, key);
        const document = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
        document.FinishTime = SCHEDULE[index];
        document.StartTime = new Date(Date.parse(SCHEDULE[index]!) - 60_000).toISOString();
        writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
      }
    });
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it('keeps exactly the expected backups, with their reasons, and the WAL they need', async () => {
    const before = await listing(env);
    const rules = ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '12'];
    const planned = await walship(['delete', 'retain', ...rules, '--json']);
    assert.equal(planned.code, 0, planned.stderr);
    const plan = JSON.parse(planned.stdout) as { backups: { backup_name: string; action: string; reasons: string[] }[] };
    const reasons = Object.fromEntries(plan.backups.map((backup, index) => [index + 1, `${backup.action}: ${backup.reasons.join(', ')}`]));
    assert.deepEqual(reasons, {
      1: 'delete: kept by no rule',
      2: 'keep: permanent',
      3: 'delete: kept by no rule',
      4: 'keep: monthly 2025-02',
      5: 'keep: monthly 2025-03',
      6: 'keep: monthly 2025-05',
      7: 'keep: monthly 2025-06',
      8: 'keep: monthly 2025-07',
      9: 'keep: monthly 2025-08',
      10: 'keep: monthly 2025-09',
      11: 'keep: monthly 2025-10',
      12: 'keep: monthly 2025-11',
      13: 'keep: monthly 2025-12',
      14: 'delete: kept by no rule',
      15: 'delete: kept by no rule',
      16: 'keep: weekly 2026-W04',
      17: 'keep: weekly 2026-W05, monthly 2026-01',
      18: 'delete: kept by no rule',
      19: 'keep: daily 2026-02-03',
      20: 'keep: daily 2026-02-04',
      21: 'keep: daily 2026-02-05',
      22: 'keep: daily 2026-02-06',
      23: 'keep: daily 2026-02-07',
      24: 'keep: daily 2026-02-08, weekly 2026-W06',
      25: 'delete: kept by no rule',
      26: 'keep: daily 2026-02-09, weekly 2026-W07, monthly 2026-02, newest complete backup',
    });
    assert.deepEqual(await listing(env), before, 'the dry run deleted nothing');

    const deleted = await walship(['delete', 'retain', ...rules, '--confirm']);
    assert.equal(deleted.code, 0, deleted.stderr);
    const kept = (JSON.parse((await walship(['backup-list', '--json'])).stdout) as Listed[]).map((backup) => backup.backup_name);
    assert.deepEqual(kept, backups.filter((_, index) => !DELETED.includes(index + 1)).map((backup) => backup.backup_name));

    // The WAL that went: below the start of the oldest kept backup (4), but the permanent backup's own.
    const segmentOf = (lsn: string) => segmentNumberOfLsn(parseLsn(lsn), SEGMENT_SIZE);
    const below = segmentOf(backups[3]!.start_lsn);
    const permanent = backups[PERMANENT - 1]!;
    const goes = (key: string) => {
      const kind = classifyKey(key);
      if (kind.kind !== 'wal' || kind.file.segment === undefined) return false;
      const segment = segmentNumberOfName(kind.file.segment, SEGMENT_SIZE);
      return segment < below && !(segment >= segmentOf(permanent.start_lsn) && segment <= segmentOf(permanent.finish_lsn));
    };
    const after = await listing(env);
    const walBefore = [...before.keys()].filter((key) => key.startsWith('wal_005/'));
    assert.ok(walBefore.filter(goes).length >= 3, `old WAL to delete: ${walBefore.filter(goes).join(', ')}`);
    assert.deepEqual([...after.keys()].filter((key) => key.startsWith('wal_005/')).sort(), walBefore.filter((key) => !goes(key)).sort());
  });

  it('the permanent backup still restores to its end from its own WAL', async () => {
    const root = makePostgresOwnedDirectory('walship-gfs-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const permanent = backups[PERMANENT - 1]!.backup_name;
    const fetched = await walship(['backup-fetch', dataDir, permanent, '--recovery-target-immediate', '--recovery-target-action', 'promote']);
    assert.equal(fetched.code, 0, fetched.stderr);
    const restored = await PostgresCluster.adopt(dataDir, root, { settings: { archive_mode: 'off' } });
    cleanups.push(() => restored.destroy());
    await restored.start();
    await restored.waitPromoted();
    assert.equal(await restored.sql('SELECT max(backup) FROM marker'), String(PERMANENT));
  });
});
