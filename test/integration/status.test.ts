// walship status on a real PostgreSQL 15 archiving to file storage (1 MiB
// segments): a backup never drilled is a WARNING; once drilled, OK with every
// series in the Prometheus file (promtool check metrics); --max-backup-age
// 1s after a wait is CRITICAL with the age; archive_command failing is
// CRITICAL naming pg_stat_archiver's failures; a segment deleted from the
// middle is CRITICAL naming it; a backup-push whose pg_basebackup is killed
// makes the next status CRITICAL although an older backup exists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';

const verdict = (stdout: string) => stdout.split('\n')[0]!;
const ISSUE_SERIES = [
  'walship_status', 'walship_backup_count', 'walship_backup_last_finish_timestamp_seconds', 'walship_backup_last_attempt_success',
  'walship_wal_last_archived_timestamp_seconds', 'walship_wal_missing_segments', 'walship_recovery_window_start_timestamp_seconds',
  'walship_drill_last_timestamp_seconds', 'walship_drill_last_success', 'walship_drill_last_rto_seconds',
  'walship_storage_bytes', 'walship_archiver_failed_count', 'walship_archiver_pending_segments', 'walship_archive_lag_bytes',
];

describe('walship status on file storage', () => {
  let archive: string;
  let work: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-status-archive-');
    work = makePostgresOwnedDirectory('walship-status-work-');
    env = { WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', TOTAL_BG_UPLOADED_LIMIT: '0', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '1', '-q']);
    await primary.sql('CREATE TABLE marker (id int)');
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 5000) g');
    await primary.switchAndWaitArchived();
  });

  after(async () => {
    await primary?.destroy();
    for (const directory of [archive, work]) if (directory) rmSync(directory, { recursive: true, force: true });
  });

  it('is a WARNING while no backup was drilled', async () => {
    const status = await walship(['status']);
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.equal(verdict(status.stdout), 'WALSHIP WARNING - no restore drill yet: run walship drill');
    assert.match(status.stdout, /^jobs: last backup-push started \S+ \S+: success$/m);
    assert.match(status.stdout, /^archiver: archive_mode on, \d+ archived, 0 failed; last archived [0-9A-F]{24} at /m);
  });

  it('is OK once the newest backup is drilled, with every series in a Prometheus file promtool accepts', async () => {
    const scratch = join(work, 'scratch');
    mkdirSync(scratch);
    giveToPostgres(scratch);
    const drilled = await walship(['drill', '--scratch', scratch]);
    assert.equal(drilled.code, 0, drilled.stdout + drilled.stderr);

    const textfile = join(work, 'walship.prom');
    const status = await walship(['status', '--prometheus', textfile]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(verdict(status.stdout), /^WALSHIP OK - newest backup \d+[sm]( \d+s)? old, 1 backups, no WAL missing, last drill \d+[sm]( \d+s)? ago$/);
    const text = readFileSync(textfile, 'utf8');
    for (const name of ISSUE_SERIES) assert.match(text, new RegExp(`^# HELP ${name} .+\\n# TYPE ${name} gauge\\n${name}[{ ]`, 'm'), `${name} is missing`);
    assert.match(text, /^walship_status 0$/m);
    assert.match(text, /^walship_backup_last_attempt_success 1$/m);
    assert.match(text, /^walship_drill_last_success 1$/m);
    assert.match(text, /^walship_archiver_failed_count 0$/m);
    assert.match(text, /^walship_storage_bytes\{kind="wal"\} [1-9]\d*$/m);
    assert.deepEqual(readdirSync(work).filter((name) => name.includes('walship.prom') && name !== 'walship.prom'), [], 'no temp file left');
    // promtool's only complaint: the _count suffix of names issue 13 gives (a lint, not an error).
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.deepEqual((checked.stdout + checked.stderr).trim().split('\n'), ['walship_archiver_failed_count', 'walship_backup_count'].map((name) => `${name} non-histogram and non-summary metrics should not have "_count" suffix`));

    const json = JSON.parse((await walship(['status', '--json'])).stdout.split('\n').slice(1).join('\n'));
    assert.equal(json.status, 'OK');
    assert.equal(json.drills.newest_backup_drilled, true);
    assert.equal(json.archiver.failing, false);
    assert.equal(json.attempts['backup-push'].result, 'success');
    assert.equal(json.attempts.drill.result, 'success');

    const printed = await walship(['status', '--prometheus', '-']);
    assert.equal(printed.code, 0);
    assert.match(printed.stdout, /^# HELP walship_status /, 'the exposition alone on stdout');
    assert.match(printed.stderr, /^WALSHIP OK - /m);
  });

  it('is CRITICAL with the age when the newest backup is older than --max-backup-age', async () => {
    await sleep(1500);
    const status = await walship(['status', '--max-backup-age', '1s']);
    assert.equal(status.code, 2, status.stdout + status.stderr);
    assert.match(verdict(status.stdout), /^WALSHIP CRITICAL - newest backup is \d+[sm]( \d+s)? old \(limit 1s\)$/);
    const bad = await walship(['status', '--max-backup-age', '1 day']);
    assert.equal(bad.code, 3);
    assert.equal(bad.stdout, 'WALSHIP UNKNOWN - --max-backup-age "1 day" is not a duration: write a number with a unit, such as 90s, 15m, 26h or 8d (s seconds, m minutes, h hours, d days)\n');
  });

  it('is CRITICAL, naming the failures from pg_stat_archiver, while archive_command fails', async () => {
    const unwritable = join(work, 'unwritable');
    mkdirSync(unwritable);
    chmodSync(unwritable, 0o500);
    await primary.sql(`ALTER SYSTEM SET archive_command = 'WALG_FILE_PREFIX=${unwritable}/archive ${walshipBinary} wal-push %p'`);
    await primary.sql('SELECT pg_reload_conf()');
    try {
      await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 5000) g');
      const waiting = await primary.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
      await primary.sql('SELECT pg_switch_wal()');
      for (let tries = 0; Number(await primary.sql('SELECT failed_count FROM pg_stat_archiver')) < 2; tries++) {
        assert.ok(tries < 120, 'the archiver never failed');
        await sleep(500);
      }
      const status = await walship(['status']);
      assert.equal(status.code, 2, status.stdout + status.stderr);
      assert.match(verdict(status.stdout), new RegExp(`^WALSHIP CRITICAL - archive_command is failing: \\d+ failures \\(pg_stat_archiver\\), the last for ${waiting} at \\S+ \\S+; last success [0-9A-F]{24} at `));
      const textfile = (await walship(['status', '--prometheus', '-'])).stdout;
      assert.match(textfile, /^walship_archiver_failed_count [2-9]\d*$/m);
      assert.match(textfile, /^walship_archiver_pending_segments [1-9]\d*$/m);
    } finally {
      await primary.sql('ALTER SYSTEM RESET archive_command');
      await primary.sql('SELECT pg_reload_conf()');
    }
    await primary.switchAndWaitArchived();
    const healthy = await walship(['status', '--max-drill-age', '1h']);
    assert.notEqual(healthy.code, 2, healthy.stdout);
  });

  it('is CRITICAL, naming the segment, when one is deleted from the middle of the archive', async () => {
    for (let round = 0; round < 3; round++) {
      await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 5000) g');
      await primary.switchAndWaitArchived();
    }
    // One that recovery from the backup needs: after its start, before the newest.
    const backup = JSON.parse((await walship(['backup-list', '--json'])).stdout)[0].backup_name as string;
    const wal = join(archive, 'wal_005');
    const segments = readdirSync(wal).filter((name) => /^[0-9A-F]{24}\.zst$/.test(name) && name > backup.slice('base_'.length)).sort();
    const middle = segments[Math.floor(segments.length / 2)]!;
    const aside = join(work, middle);
    renameSync(join(wal, middle), aside);
    try {
      const status = await walship(['status']);
      assert.equal(status.code, 2, status.stdout + status.stderr);
      assert.match(verdict(status.stdout), new RegExp(`^WALSHIP CRITICAL - 1 WAL segment missing on timeline 1's history: ${middle.slice(0, 24)}`));
      assert.match((await walship(['status', '--prometheus', '-'])).stdout, /^walship_wal_missing_segments 1$/m);
    } finally {
      renameSync(aside, join(wal, middle));
    }
  });

  it('is CRITICAL "last backup-push attempt failed" after pg_basebackup was killed, although an older backup exists', async () => {
    // pg_basebackup, slowed down, and killed once it has begun to send.
    const killed = join(work, 'pg_basebackup-killed');
    writeFileSync(killed, `#!/bin/sh\n${join(postgresBin, 'pg_basebackup')} "$@" --max-rate=1M &\nchild=$!\nsleep 2\nkill -9 $child\nwait $child\n`);
    chmodSync(killed, 0o755);
    const pushed = await walship(['backup-push', '--pg-basebackup', killed]);
    assert.equal(pushed.code, 1, pushed.stderr);
    assert.equal(JSON.parse((await walship(['backup-list', '--json'])).stdout).length, 1, 'the older backup is still there');

    const status = await walship(['status']);
    assert.equal(status.code, 2, status.stdout + status.stderr);
    assert.match(verdict(status.stdout), /^WALSHIP CRITICAL - last backup-push attempt failed \(\d+s ago\): .*pg_basebackup/);
    assert.match((await walship(['status', '--prometheus', '-'])).stdout, /^walship_backup_last_attempt_success 0$/m);
    const attempts = readdirSync(join(archive, 'walship', 'attempts', 'backup-push'));
    assert.equal(attempts.filter((name) => name.endsWith('_failed.json')).length, 1);
    assert.ok(existsSync(join(archive, 'basebackups_005')));
  });
});
