// What backup-fetch hands the restored server, and how backup-list prints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupRow, plainTable, prettyTable } from '../../src/backup/list.ts';
import { carriedSettings } from '../../src/backup/recovery-setup.ts';
import type { BackupSentinel } from '../../src/backup/catalog.ts';
import { Config } from '../../src/config/config.ts';

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
    assert.match(lines[1]!, /^\| NAME +\| MODIFIED .*\| PERMANENT \|$/);
    assert.match(lines[3]!, /\| 3.00 MiB +\| 1.00 MiB +\| 0 +\| yes +\|$/);
  });
});
