// Every object key walship reads or writes, and what a listed key is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ARCHIVE_IDENTITY_KEY,
  backupPrefix,
  classifyKey,
  metadataKey,
  partExtension,
  partKey,
  partName,
  sentinelKey,
  walKey,
} from '../../src/archive/layout.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';

const BACKUP = 'base_000000010000000000000004';

describe('the archive layout', () => {
  it("names WAL-G's keys and walship's record", () => {
    assert.equal(walKey('000000010000000000000003', codecFor('zstd')), 'wal_005/000000010000000000000003.zst');
    assert.equal(walKey('00000002.history', codecFor('brotli')), 'wal_005/00000002.history.br');
    assert.equal(walKey('000000010000000000000003', codecFor('none')), 'wal_005/000000010000000000000003');
    assert.equal(walKey('000000010000000000000003', { extension: 'lz4' }), 'wal_005/000000010000000000000003.lz4');
    assert.equal(sentinelKey(BACKUP), `basebackups_005/${BACKUP}_backup_stop_sentinel.json`);
    assert.equal(metadataKey(BACKUP), `basebackups_005/${BACKUP}/metadata.json`);
    assert.equal(backupPrefix(BACKUP), `basebackups_005/${BACKUP}/`);
    assert.equal(partKey(BACKUP, partName(7, codecFor('zstd'))), `basebackups_005/${BACKUP}/tar_partitions/part_007.tar.zst`);
    assert.equal(ARCHIVE_IDENTITY_KEY, 'walship/archive.json');
  });

  it('reads the compression extension of a part name', () => {
    assert.equal(partExtension('part_001.tar.zst'), 'zst');
    assert.equal(partExtension('part_1234.tar.br'), 'br');
    assert.equal(partExtension('part_001.tar'), '');
  });

  it('classifies WAL keys, whose names may hold dots of their own', () => {
    const wal = (key: string) => {
      const kind = classifyKey(key);
      assert.equal(kind.kind, 'wal', key);
      return kind.kind === 'wal' ? { name: kind.file.name, kind: kind.file.kind, timeline: kind.file.timeline, extension: kind.extension } : undefined;
    };
    assert.deepEqual(wal('wal_005/0000000A0000000100000002.zst'), { name: '0000000A0000000100000002', kind: 'segment', timeline: 10, extension: 'zst' });
    assert.deepEqual(wal('wal_005/000000010000000000000003'), { name: '000000010000000000000003', kind: 'segment', timeline: 1, extension: '' });
    assert.deepEqual(wal('wal_005/00000002.history'), { name: '00000002.history', kind: 'history', timeline: 2, extension: '' });
    assert.deepEqual(wal('wal_005/00000002.history.zst'), { name: '00000002.history', kind: 'history', timeline: 2, extension: 'zst' });
    assert.deepEqual(wal('wal_005/000000010000000000000005.partial'), { name: '000000010000000000000005.partial', kind: 'partial', timeline: 1, extension: '' });
    assert.deepEqual(wal('wal_005/000000010000000000000005.partial.br'), { name: '000000010000000000000005.partial', kind: 'partial', timeline: 1, extension: 'br' });
    assert.deepEqual(wal('wal_005/000000010000000000000002.00000028.backup.lz4'), {
      name: '000000010000000000000002.00000028.backup',
      kind: 'backup',
      timeline: 1,
      extension: 'lz4',
    });
  });

  it('classifies backup keys by the backup they belong to', () => {
    assert.deepEqual(classifyKey(`basebackups_005/${BACKUP}_backup_stop_sentinel.json`), { kind: 'sentinel', backup: BACKUP });
    assert.deepEqual(classifyKey(`basebackups_005/${BACKUP}/metadata.json`), { kind: 'backup-object', backup: BACKUP, path: 'metadata.json' });
    assert.deepEqual(classifyKey(`basebackups_005/${BACKUP}/tar_partitions/part_001.tar.zst`), {
      kind: 'backup-object',
      backup: BACKUP,
      path: 'tar_partitions/part_001.tar.zst',
    });
    assert.deepEqual(classifyKey('walship/archive.json'), { kind: 'walship', path: 'archive.json' });
  });

  it('leaves everything else as other', () => {
    for (const key of [
      'wal_005/000000010000000000000003.ZST', // extensions are lower case
      'wal_005/00000001000000000000003.zst', // 23 digits
      'wal_005/notes.txt',
      'wal_005/sub/000000010000000000000003.zst',
      'wal_005/',
      'basebackups_005/base_123_backup_stop_sentinel.json', // not a backup name
      'basebackups_005/base_000000010000000A000000D0_D_000000010000000A000000C9_backup_stop_sentinel.json', // a WAL-G delta
      `basebackups_005/${BACKUP}/`,
      'basebackups_005/base_123/metadata.json',
      `basebackups_005/${BACKUP}_backup_stop_sentinel.json.bak`,
      'walship/',
      'walship.json',
      'archive/wal_005/000000010000000000000003.zst',
      'backup.info',
    ]) {
      assert.deepEqual(classifyKey(key), { kind: 'other' }, key);
    }
  });
});
