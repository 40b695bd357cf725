// backup-verify over synthetic backups on file storage: parts as walship
// stores them, a manifest with SHA-256 checksums (a second pass, since
// walship's own backups use CRC-32C), files missing, extra or differing, a
// damaged manifest, a missing part, and the WAL to consistency in the backup,
// in the archive or nowhere.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { zstdCompressSync } from 'node:zlib';
import { type BackupSentinel, writeBackupDocuments } from '../../src/archive/backups.ts';
import { partKey } from '../../src/archive/layout.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { verifyBackups } from '../../src/verify/backup-verify.ts';
import { backupManifest } from '../support/manifest.ts';
import { tarArchive, type TestMember } from '../support/tar.ts';
import { TEST_SYSTEM_IDENTIFIER, walLongPageHeader } from '../support/wal.ts';

const MiB = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'walship-backup-verify-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SEGMENT = '000000010000000000000002';
const segmentContent = () => Buffer.concat([walLongPageHeader({ segmentSize: MiB }), Buffer.alloc(MiB - 40)]);
const files: TestMember[] = [
  { name: 'backup_label', content: 'START WAL LOCATION: 0/200028 (file 000000010000000000000002)\n' },
  { name: 'PG_VERSION', content: '15\n' },
  { name: 'base/1', type: '5', mode: 0o700 },
  { name: 'base/1/1259', content: randomBytes(3 * 8192) },
  { name: 'global/pg_control', content: randomBytes(8192) },
  { name: 'pg_wal/archive_status/000000010000000000000002.done', content: '' },
];
const WAL_RANGES = [{ Timeline: 1, 'Start-LSN': '0/200028', 'End-LSN': '0/200100' }];
const sha256 = (content: Buffer | string | undefined) => createHash('sha256').update(content ?? '').digest('hex');
const listed = (members: TestMember[]) =>
  members.filter((member) => (member.type ?? '0') === '0').map((member) => ({ Path: member.name, Size: Buffer.from(member.content ?? '').length, 'Checksum-Algorithm': 'SHA256', Checksum: sha256(member.content) }));

/** Stores a backup of `parts` (members each), its manifest as the last member of the last part. */
async function putBackup(parts: TestMember[][], manifest: Buffer = backupManifest(listed(files), WAL_RANGES)) {
  const storage = await FileStorage.open(mkdtempSync(join(root, 'archive-')));
  const name = `base_${SEGMENT}`;
  const stored = parts.map((members, index) => zstdCompressSync(tarArchive(index === parts.length - 1 ? [...members, { name: 'backup_manifest', content: manifest }] : members)));
  const sentinel = {
    BackupName: name, LSN: '0/200028', FinishLSN: '0/200100', Timeline: 1, StartTime: '2026-12-01T20:00:00Z', FinishTime: '2026-12-01T20:00:01Z',
    Hostname: 'db1', DataDir: '/srv/pg', PgVersion: 150010, SystemIdentifier: TEST_SYSTEM_IDENTIFIER, WalSegmentSize: MiB,
    UncompressedSize: 0, CompressedSize: 0, Compression: 'zstd', Label: 'test', IsPermanent: false, UserData: null, WalshipVersion: '0.1.0',
    Parts: stored.map((part, index) => ({ Name: `part_00${index + 1}.tar.zst`, UncompressedSize: 0, CompressedSize: part.length, SHA256: sha256(part) })),
  } satisfies BackupSentinel;
  for (const [index, part] of stored.entries()) await storage.put(partKey(name, sentinel.Parts[index]!.Name), Readable.from([part]));
  await writeBackupDocuments(storage, sentinel, { createOnly: true });
  return storage;
}

const verify = async (storage: FileStorage) => verifyBackups({ storage, backups: 'LATEST', downloadConcurrency: 4 });
const withWal: TestMember[] = [{ name: `pg_wal/${SEGMENT}`, content: segmentContent() }];

describe('backup-verify', () => {
  it('verifies a backup in two parts with a SHA-256 manifest, the WAL inside it', async () => {
    const result = await verify(await putBackup([files.slice(0, 3), [...files.slice(3), ...withWal]]));
    assert.equal(result.state, 'OK', result.summary);
    assert.match(result.summary, new RegExp(`^base_${SEGMENT}: 5 files match backup_manifest \\(1\\.03 MiB read\\); the WAL to its consistency point \\(1 segment\\) is in the backup$`));
    const [report] = (result.json as { backups: { checksum_algorithm: string; wal_segments: unknown }[] }).backups;
    assert.equal(report?.checksum_algorithm, 'SHA256');
    assert.deepEqual(report?.wal_segments, [{ segment: SEGMENT, where: 'backup' }]);
  });

  it('names files missing, extra or different, and a manifest whose own checksum fails', async () => {
    const changed = files.map((member) => (member.name === 'PG_VERSION' ? { ...member, content: '16\n' } : member));
    const result = await verify(await putBackup([[...changed.filter((member) => member.name !== 'base/1/1259'), { name: 'stray', content: 'x' }, ...withWal]]));
    assert.equal(result.state, 'CRITICAL');
    assert.deepEqual(result.summary.split('; '), [
      `base_${SEGMENT}: PG_VERSION does not match backup_manifest: SHA-256 ${sha256('16\n')}, expected ${sha256('15\n')}`,
      `base_${SEGMENT}: base/1/1259 is in backup_manifest but not in the backup`,
      `base_${SEGMENT}: stray is in the backup but not in backup_manifest`,
    ]);
    const tampered = Buffer.from(backupManifest(listed(files), WAL_RANGES).toString().replace('"Size":3', '"Size":4'));
    const damaged = await verify(await putBackup([[...files, ...withWal]], tampered));
    assert.match(damaged.summary, /^base_\S+: backup_manifest: its Manifest-Checksum [0-9a-f]{64} does not match its content .*; base_\S+: PG_VERSION has 3 bytes, backup_manifest says 4$/);
  });

  it('checks sizes alone against a manifest without checksums, and is CRITICAL about one that is no manifest', async () => {
    const sizesOnly = backupManifest(listed(files).map(({ Path, Size }) => ({ Path, Size })), WAL_RANGES);
    const result = await verify(await putBackup([[...files, ...withWal]], sizesOnly));
    assert.equal(result.state, 'OK', result.summary);
    assert.equal((result.json as { backups: { checksum_algorithm: string }[] }).backups[0]?.checksum_algorithm, 'NONE');
    const garbage = await verify(await putBackup([[...files, ...withWal]], Buffer.from('{"Files": "no"}')));
    assert.deepEqual([garbage.state, garbage.summary], ['CRITICAL', `base_${SEGMENT}: backup_manifest is not a backup manifest: no Files or WAL-Ranges list`]);
  });

  it('finds the WAL to consistency in the archive when the backup lacks it, and is CRITICAL when neither has it', async () => {
    const storage = await putBackup([files]);
    const missing = await verify(storage);
    assert.equal(missing.state, 'CRITICAL');
    assert.equal(missing.summary, `base_${SEGMENT}: WAL ${SEGMENT}, which the backup needs to become consistent (0/200028 to 0/200100), is neither in the backup nor in the archive`);
    await storage.put(`wal_005/${SEGMENT}.partial.zst`, Readable.from([Buffer.from('not the segment')]));
    assert.equal((await verify(storage)).state, 'CRITICAL', 'a .partial file is not the segment');
    await storage.put(`wal_005/${SEGMENT}.zst`, Readable.from([zstdCompressSync(segmentContent())]));
    const archived = await verify(storage);
    assert.equal(archived.state, 'OK', archived.summary);
    assert.match(archived.summary, /the WAL to its consistency point \(1 segment\) is in the backup \(0\) and the archive \(1\)$/);
  });

  it('is CRITICAL about a missing part, and about a backup that is not there', async () => {
    const storage = await putBackup([files.slice(0, 3), [...files.slice(3), ...withWal]]);
    await storage.delete(partKey(`base_${SEGMENT}`, 'part_001.tar.zst'));
    const result = await verify(storage);
    assert.equal(result.state, 'CRITICAL');
    assert.match(result.summary, /^base_\S+: basebackups_005\/base_\S+\/tar_partitions\/part_001\.tar\.zst is missing from file:\/\/.*: backup base_\S+ is damaged$/);
    const absent = await verifyBackups({ storage, backups: { name: 'base_0000000100000000000000FF' }, downloadConcurrency: 4 });
    assert.deepEqual([absent.state, absent.summary.replace(/file:\S+/, 'STORAGE')], ['CRITICAL', 'backup base_0000000100000000000000FF is not in STORAGE (or is incomplete): backup-list shows the complete backups']);
  });
});
