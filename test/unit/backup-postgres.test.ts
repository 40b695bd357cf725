// What walship reads from a base backup (backup_label, backup_manifest,
// pg_control) and the recovery settings it writes for a restored cluster.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseBackupLabel } from '../../src/postgres/backup-label.ts';
import { backupEndLsn, checkFilesAgainstManifest, fileChecksum, parseManifest, parseWalRanges } from '../../src/postgres/backup-manifest.ts';
import { parseControlFile } from '../../src/postgres/control-file.ts';
import { backupManifest } from '../support/manifest.ts';
import {
  chooseRecoveryTarget,
  parseTimeWithOffset,
  quoteSettingValue,
  renderRecoverySettings,
  shellQuote,
} from '../../src/postgres/recovery-settings.ts';

const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2024-05-01 10:00:00 UTC
LABEL: walship backup-push
START TIMELINE: 1
`;

describe('backup_label', () => {
  it('gives the start LSN, segment, checkpoint and timeline', () => {
    const label = parseBackupLabel(LABEL);
    assert.equal(label.startLsn, 0x2000028n);
    assert.equal(label.startSegment, '000000010000000000000002');
    assert.equal(label.checkpointLsn, 0x2000060n);
    assert.equal(label.timeline, 1);
    assert.equal(label.label, 'walship backup-push');
    assert.equal(label.startTime, '2024-05-01 10:00:00 UTC');
  });

  it('takes the timeline from the segment name when START TIMELINE is absent', () => {
    const label = parseBackupLabel(LABEL.replace('START TIMELINE: 1\n', '').replaceAll('(file 00000001', '(file 00000003'));
    assert.equal(label.timeline, 3);
  });

  it('refuses text that is not a backup_label', () => {
    assert.throws(() => parseBackupLabel('hello'), /START WAL LOCATION/);
    assert.throws(() => parseBackupLabel(LABEL.replace('(file ', '(segment ')), /unreadable START WAL LOCATION/);
  });
});

describe('backup_manifest', () => {
  const tail = `...{ "Path": "global/pg_control", "Size": 8192 }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" },
{ "Timeline": 2, "Start-LSN": "0/3000000", "End-LSN": "1/A0" }
],
"Manifest-Checksum": "abc"}
`;
  it('gives the WAL ranges and the end of the backup from the last one', () => {
    assert.deepEqual(parseWalRanges(tail), [
      { timeline: 1, startLsn: 0x2000028n, endLsn: 0x2000100n },
      { timeline: 2, startLsn: 0x3000000n, endLsn: 0x1000000a0n },
    ]);
    assert.deepEqual(backupEndLsn(tail), { timeline: 2, endLsn: 0x1000000a0n });
    assert.throws(() => backupEndLsn('{"Files": []}'), /no WAL-Ranges/);
  });

  it('checks presence and sizes of the listed files when pg_verifybackup is not installed', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'walship-manifest-'));
    try {
      mkdirSync(join(directory, 'global'));
      writeFileSync(join(directory, 'global', 'pg_control'), Buffer.alloc(8192));
      writeFileSync(join(directory, 'PG_VERSION'), '15\n');
      writeFileSync(join(directory, 'odd name'), 'abc');
      const manifest = (files: object[]) => backupManifest(files);
      const good = [
        { Path: 'global/pg_control', Size: 8192 },
        { Path: 'PG_VERSION', Size: 3 },
        { 'Encoded-Path': Buffer.from('odd name').toString('hex'), Size: 3 },
      ];
      assert.deepEqual(await checkFilesAgainstManifest(directory, manifest(good)), []);
      assert.deepEqual(await checkFilesAgainstManifest(directory, manifest([...good, { Path: 'base/1/1259', Size: 1 }, { Path: 'PG_VERSION', Size: 4 }])), [
        'base/1/1259 is missing',
        'PG_VERSION has 3 bytes, the manifest says 4',
      ]);
      await assert.rejects(checkFilesAgainstManifest(directory, Buffer.from('{"Files": 1}')), /backup_manifest in .* is not a backup manifest/);
      const tampered = Buffer.from(manifest(good).toString().replace('"Size":3', '"Size":4'));
      assert.deepEqual((await checkFilesAgainstManifest(directory, tampered))[0]?.replace(/[0-9a-f]{64}/g, 'X'), 'backup_manifest: its Manifest-Checksum X does not match its content (SHA-256 X)');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe('backup_manifest in full', () => {
  it('reads files, encoded paths, algorithms and WAL ranges, and checks the Manifest-Checksum', () => {
    const bytes = backupManifest(
      [
        { Path: 'backup_label', Size: 225, 'Last-Modified': '2026-12-01 20:58:13 GMT', 'Checksum-Algorithm': 'CRC32C', Checksum: 'C7B1CB1C' },
        { 'Encoded-Path': Buffer.from('odd name').toString('hex'), Size: 3, 'Last-Modified': '2026-12-01 20:58:13 GMT' },
      ],
      [{ Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000138' }],
    );
    const manifest = parseManifest(bytes, 'backup_manifest');
    assert.deepEqual(manifest.files, [
      { path: 'backup_label', size: 225, algorithm: 'CRC32C', checksum: 'c7b1cb1c' },
      { path: 'odd name', size: 3, algorithm: 'NONE', checksum: undefined },
    ]);
    assert.deepEqual(manifest.walRanges, [{ timeline: 1, startLsn: 0x2000028n, endLsn: 0x2000138n }]);
    assert.equal(manifest.checksumProblem, undefined);
    const edited = Buffer.from(bytes.toString().replace('225', '226'));
    assert.match(parseManifest(edited, 'backup_manifest').checksumProblem!, /^its Manifest-Checksum [0-9a-f]{64} does not match its content/);
    assert.throws(() => parseManifest(Buffer.from('{"Files": []}'), 'part_001.tar.zst: backup_manifest'), /^WalshipError: part_001\.tar\.zst: backup_manifest is not a backup manifest: no Files or WAL-Ranges list$/);
  });

  it("computes files' checksums as the manifest writes them: CRC-32C little-endian, SHA in hex", async () => {
    const checksumOf = async (algorithm: 'CRC32C' | 'SHA256' | 'NONE', pieces: string[]) => {
      const checksum = await fileChecksum(algorithm);
      checksum.start();
      for (const piece of pieces) checksum.update(Buffer.from(piece));
      return checksum.finish();
    };
    // CRC-32C of "123456789" is 0xE3069283 (RFC 3720); PostgreSQL writes its bytes as they lie in memory.
    assert.equal(await checksumOf('CRC32C', ['1234', '56789']), '839206e3');
    assert.equal(await checksumOf('SHA256', ['a', 'bc']), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(await checksumOf('NONE', ['abc']), undefined);
    // One instance serves file after file.
    const reused = await fileChecksum('CRC32C');
    for (const content of ['x', '123456789']) {
      reused.start();
      reused.update(Buffer.from(content));
      if (content !== 'x') assert.equal(reused.finish(), '839206e3');
      else reused.finish();
    }
  });
});

describe('pg_control', () => {
  it('gives the system identifier as an exact 64-bit number', () => {
    const control = Buffer.alloc(8192);
    control.writeBigUInt64LE(7710658353483416461n, 0);
    control.writeUInt32LE(1300, 8);
    assert.deepEqual(parseControlFile(control), { systemIdentifier: '7710658353483416461', controlVersion: 1300 });
  });

  it('refuses a file that is not a little-endian control file', () => {
    assert.throws(() => parseControlFile(Buffer.alloc(8)), /damaged/);
    const bigEndian = Buffer.alloc(64);
    bigEndian.writeUInt32BE(1300, 8);
    assert.throws(() => parseControlFile(bigEndian), /unknown version/);
  });
});

describe('recovery targets', () => {
  it('keeps a target time to the microsecond and normalizes its offset', () => {
    assert.equal(parseTimeWithOffset('2024-05-01 10:00:00.123456+00', '--recovery-target-time').value, '2024-05-01 10:00:00.123456+00:00');
    assert.equal(parseTimeWithOffset('2024-05-01T10:00:00Z', '--recovery-target-time').value, '2024-05-01 10:00:00+00:00');
    assert.equal(parseTimeWithOffset('2024-05-01 12:30:00+0230', '--recovery-target-time').value, '2024-05-01 12:30:00+02:30');
    assert.equal(parseTimeWithOffset('2024-05-01 12:00:00+02', '--recovery-target-time').epochMs, Date.UTC(2024, 4, 1, 10));
    assert.equal(parseTimeWithOffset('2024-05-01 10:00:00.250-01:00', '--recovery-target-time').epochMs, Date.UTC(2024, 4, 1, 11, 0, 0, 250));
  });

  it('refuses a time without an offset, or an impossible one', () => {
    assert.throws(() => parseTimeWithOffset('2024-05-01 10:00:00', '--recovery-target-time'), /UTC offset/);
    assert.throws(() => parseTimeWithOffset('yesterday', '--recovery-target-time'), /UTC offset/);
    assert.throws(() => parseTimeWithOffset('2024-02-30 10:00:00+00', '--recovery-target-time'), /not a valid date/);
  });

  it('allows at most one target, each validated', () => {
    assert.equal(chooseRecoveryTarget({}), undefined);
    assert.deepEqual(chooseRecoveryTarget({ immediate: true }), { kind: 'immediate' });
    assert.deepEqual(chooseRecoveryTarget({ lsn: '0/3000060' }), { kind: 'lsn', value: 0x3000060n });
    assert.deepEqual(chooseRecoveryTarget({ xid: '1234' }), { kind: 'xid', value: '1234' });
    assert.throws(() => chooseRecoveryTarget({ lsn: '3000060' }), /not an LSN/);
    assert.throws(() => chooseRecoveryTarget({ xid: 'abc' }), /not a transaction ID/);
    assert.throws(() => chooseRecoveryTarget({ xid: '1', immediate: true }), /choose one recovery target, not --recovery-target-xid and --recovery-target-immediate/);
  });
});

describe('recovery settings', () => {
  it('clears every other target first, then sets the chosen one', () => {
    const text = renderRecoverySettings({
      restoreCommand: '/usr/bin/walship --config /data/walship-recovery.json wal-fetch %f %p',
      target: chooseRecoveryTarget({ time: '2024-05-01 10:00:00+00' }),
      action: 'promote',
      comment: 'walship backup-fetch base_000000010000000000000002',
    });
    assert.equal(text, `# walship backup-fetch base_000000010000000000000002
restore_command = '/usr/bin/walship --config /data/walship-recovery.json wal-fetch %f %p'
recovery_target = ''
recovery_target_lsn = ''
recovery_target_xid = ''
recovery_target_name = ''
recovery_target_time = '2024-05-01 10:00:00+00:00'
recovery_target_action = 'promote'
`);
  });

  it('renders immediate and LSN targets, and no action unless asked', () => {
    const immediate = renderRecoverySettings({ restoreCommand: 'x', target: { kind: 'immediate' }, comment: 'c' });
    assert.match(immediate, /^recovery_target = 'immediate'$/m);
    assert.doesNotMatch(immediate, /recovery_target_action/);
    assert.match(renderRecoverySettings({ restoreCommand: 'x', target: { kind: 'lsn', value: 0x10000000an }, comment: 'c' }), /^recovery_target_lsn = '1\/A'$/m);
  });

  it('turns archiving off only when asked, leaving the restored archive settings otherwise', () => {
    assert.match(renderRecoverySettings({ restoreCommand: 'x', archivingOff: true, comment: 'c' }), /^archive_mode = 'off'\n$/m);
    assert.doesNotMatch(renderRecoverySettings({ restoreCommand: 'x', comment: 'c' }), /archive/);
  });

  it('quotes for postgresql.conf and for the shell that runs restore_command', () => {
    assert.equal(quoteSettingValue("it's C:\\x"), "'it''s C:\\\\x'");
    assert.equal(shellQuote(['/usr/bin/walship', '--config', '/srv/my data/w.json', 'wal-fetch']), "/usr/bin/walship --config '/srv/my data/w.json' wal-fetch");
    assert.equal(shellQuote(["/o'neil/walship"]), `'/o'\\''neil/walship'`);
  });
});
