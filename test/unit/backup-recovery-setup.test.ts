// What backup-fetch hands the restored server, and how backup-list prints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupRow } from '../../src/backup/list.ts';
import { plainTable, prettyTable } from '../../src/util/table.ts';
import { carriedSettings, chooseArchiving, describeArchiving, requireOutsideDataDirectory } from '../../src/backup/recovery-setup.ts';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { Config } from '../../src/config/config.ts';
import type { RecoveryTarget } from '../../src/postgres/recovery-settings.ts';

describe('settings carried into the restored cluster', () => {
  it('keeps storage, credential and walship settings; drops the libpq password, the config path and the rest', () => {
    const env = {
      PATH: '/usr/bin', HOME: '/root', PGPASSWORD: 'pg-secret', WALG_CONFIG_PATH: '/etc/walship.yaml',
      WALG_S3_PREFIX: 's3://bucket/path', AWS_SECRET_ACCESS_KEY: 'aws-secret', WALG_COMPRESSION_METHOD: '',
    };
    const fromFile = new Map([['AZURE_STORAGE_ACCOUNT', 'account'], ['WALG_S3_PREFIX', 's3://ignored/env-wins']]);
    assert.deepEqual(carriedSettings(new Config(env, fromFile, '/etc/walship.yaml')), {
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      AZURE_STORAGE_ACCOUNT: 'account',
      WALG_S3_PREFIX: 's3://bucket/path',
    });
  });

  it('carries an inline key as the 32 bytes it makes, in hex, so JSON text loses none of its bytes', () => {
    const given = Buffer.concat([Buffer.from('key of 25 bytes or more, '), Buffer.from([0xff, 0xfe])]);
    const keyText = given.toString('latin1');
    const carried = carriedSettings(new Config({ WALG_FILE_PREFIX: '/archive', WALG_LIBSODIUM_KEY: keyText, WALG_LIBSODIUM_KEY_TRANSFORM: 'none' }));
    assert.deepEqual(carried, { WALG_FILE_PREFIX: '/archive', WALG_LIBSODIUM_KEY: Buffer.concat([Buffer.from(keyText, 'utf8'), Buffer.alloc(32)]).subarray(0, 32).toString('hex'), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' });
    const path = { WALG_FILE_PREFIX: '/archive', WALG_LIBSODIUM_KEY_PATH: '/etc/walship/libsodium.key', WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' };
    assert.deepEqual(carriedSettings(new Config(path)), path, 'a key file is carried as its path');
  });
});

describe('archiving of the restored server', () => {
  const time: RecoveryTarget = { kind: 'time', value: '2024-05-01 10:00:00+00:00', epochMs: 0 };

  it('is off for a restore to a recovery target, kept without one or for a standby, and the flags decide over both', () => {
    const choose = (target: RecoveryTarget | undefined, standby: boolean, archive: boolean | undefined) => chooseArchiving({ target, standby, archive }).off;
    assert.equal(choose(time, false, undefined), true);
    assert.equal(choose({ kind: 'immediate' }, false, undefined), true);
    assert.equal(choose(undefined, false, undefined), false);
    assert.equal(choose(time, true, undefined), false);
    assert.equal(choose(time, false, true), false);
    assert.equal(choose(undefined, false, false), true);
    assert.equal(choose(undefined, true, false), true);
  });

  it('tells the user what was done and how to change it before promotion', () => {
    const off = describeArchiving(chooseArchiving({ target: time, standby: false, archive: undefined }), '/srv/pg/copy');
    assert.equal(off.length, 2);
    assert.match(off[0]!, /^archiving is off \(a recovery target: usually a side copy\): archive_mode = 'off' in \/srv\/pg\/copy\/postgresql.auto.conf/);
    assert.match(off[1]!, /set archive_mode = 'on' in that file before starting it \(or restore with --archive\); once started, ALTER SYSTEM SET archive_mode = 'on' and restart it before it is promoted/);
    const kept = describeArchiving(chooseArchiving({ target: undefined, standby: false, archive: undefined }), '/srv/pg/main');
    assert.match(kept[0]!, /^archiving is kept \(no recovery target: usually a replacement\)/);
    assert.match(kept[1]!, /add archive_mode = 'off' to \/srv\/pg\/main\/postgresql.auto.conf before starting it \(or restore with --no-archive\)/);
  });
});

describe('where the recovery settings may go', () => {
  it('refuses a spool inside the data directory', () => {
    assert.throws(() => requireOutsideDataDirectory('/srv/pg/copy/spool', '/srv/pg/copy'), /WALSHIP_SPOOL_DIR=\/srv\/pg\/copy\/spool is inside the data directory \/srv\/pg\/copy/);
    assert.throws(() => requireOutsideDataDirectory('/srv/pg/copy', '/srv/pg/copy'), /inside the data directory/);
    requireOutsideDataDirectory('/srv/pg/.walship-copy', '/srv/pg/copy');
    requireOutsideDataDirectory('/srv/pg/copy2', '/srv/pg/copy');
    requireOutsideDataDirectory('/srv/pg/copy/..spool/../../x', '/srv/pg/copy');
  });
});

describe('backup-list tables', () => {
  const sentinel = {
    BackupName: 'base_000000010000000000000004', LSN: '0/4000028', FinishLSN: '0/4000100', Timeline: 1,
    StartTime: '2026-01-01T00:00:00.000Z', FinishTime: '2026-01-01T00:00:05.000Z', Hostname: 'db1', DataDir: '/pg',
    PgVersion: 150004, SystemIdentifier: '1', UncompressedSize: 3 << 20, CompressedSize: 1 << 20, Compression: 'zstd',
    Label: 'l', IsPermanent: true, UserData: null, Parts: [], WalshipVersion: 'test',
  } satisfies BackupSentinel;

  it('prints WAL-G columns, aligned', () => {
    assert.equal(plainTable([backupRow(sentinel, false)]), [
      'name                           modified                  wal_segment_backup_start',
      'base_000000010000000000000004  2026-01-01T00:00:05.000Z  000000010000000000000004',
    ].join('\n'));
  });

  it('boxes the detailed table', () => {
    const lines = prettyTable([backupRow(sentinel, true)]).split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[0]!, /^\+-+\+/);
    assert.match(lines[1]!, /^\| NAME +\| MODIFIED .*\| PERMANENT \| WRITTEN_BY \| LAST_DRILL \| DRILL_RESULT \| DRILL_RTO \|$/);
    assert.match(lines[3]!, /\| 3.00 MiB +\| 1.00 MiB +\| 0 +\| yes +\| walship +\| - +\| - +\| - +\|$/);
  });

  it("shows a backup's last drill with --detail only", () => {
    const drill = { backup: sentinel.BackupName, finished_at: '2026-01-08T04:31:15.000Z', result: 'OK', rto_seconds: 75, report: 'walship/drills/x.json' };
    assert.deepEqual(backupRow(sentinel, false, drill), backupRow(sentinel, false));
    const row = backupRow(sentinel, true, drill);
    assert.deepEqual([row.last_drill, row.drill_result, row.drill_rto], ['2026-01-08T04:31:15.000Z', 'OK', '1:15']);
  });
});
