// walship copy's engine over synthetic file archives: what it copies and in
// which order, what it checks on the way, what it never replaces, how a second
// run and a resumed run behave, and what --prune deletes and keeps.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { type BackupSentinel, markBackup, writeBackupDocuments } from '../../src/archive/backups.ts';
import { joinWal } from '../../src/archive/difference.ts';
import { ArchiveIdentity, switchOnEncryption } from '../../src/archive/identity.ts';
import { ARCHIVE_IDENTITY_KEY, partKey, sentinelKey, walKey } from '../../src/archive/layout.ts';
import { type CopyReport, type CopySettings, copyArchive } from '../../src/copy/copy.ts';
import { log } from '../../src/log/logger.ts';
import { keyIdOf } from '../../src/stages/encrypt/encryption.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { integrityMetadata } from '../../src/stages/object-metadata.ts';
import { storedFormStages, upload } from '../../src/stages/transfer.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { withKey } from '../support/storage.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-copy-'));
after(() => rmSync(root, { recursive: true, force: true }));
log.configure({ level: 'error' });

const SYSTEM_IDENTIFIER = '7000000000000000001';

async function archive(): Promise<{ directory: string; storage: FileStorage }> {
  const directory = mkdtempSync(join(root, 'archive-'));
  return { directory, storage: await FileStorage.open(directory) };
}

async function putRecord(storage: Storage, systemIdentifier = SYSTEM_IDENTIFIER, encryption: Record<string, string> = {}): Promise<void> {
  const record = { SystemIdentifier: systemIdentifier, WalSegmentSize: 16 << 20, CreatedAt: '2026-11-01T00:00:00Z', WalshipVersion: '0.1.0', ...encryption };
  await storage.put(ARCHIVE_IDENTITY_KEY, Readable.from([Buffer.from(JSON.stringify(record))]));
}

/** A WAL file as wal-push stores it: compressed, with the CRC-32 and size of its content. */
async function putWal(storage: Storage, name: string, content: Buffer = randomBytes(3000), method: 'zstd' | 'brotli' | 'none' = 'zstd'): Promise<string> {
  const codec = codecFor(method);
  const digest = { algorithm: 'crc32' as const, checksum: crc32(content).toString(16).padStart(8, '0'), size: content.length };
  await upload(storage, walKey(name, codec), Readable.from([content]), storedFormStages(storage, codec, 1), { metadata: integrityMetadata(digest, false) });
  return walKey(name, codec);
}

const segment = (number: number) => `00000001000000000000${number.toString(16).toUpperCase().padStart(4, '0')}`;

/** A walship backup starting in segment `start`: `parts` parts of random bytes, their SHA-256 in the sentinel. */
async function putBackup(storage: Storage, start: number, finishTime: string, options: { parts?: number; permanent?: boolean } = {}): Promise<BackupSentinel> {
  const name = `base_${segment(start)}`;
  const parts = [];
  for (let index = 1; index <= (options.parts ?? 2); index++) {
    const data = randomBytes(5000);
    const part = `part_00${index}.tar.zst`;
    await storage.put(partKey(name, part), Readable.from([data]));
    parts.push({ Name: part, UncompressedSize: 9000, CompressedSize: data.length, SHA256: createHash('sha256').update(data).digest('hex') });
  }
  const lsn = `0/${start.toString(16).toUpperCase()}000028`;
  const sentinel: BackupSentinel = {
    BackupName: name, LSN: lsn, FinishLSN: `0/${start.toString(16).toUpperCase()}000138`, Timeline: 1, StartTime: finishTime, FinishTime: finishTime,
    Hostname: 'db1', DataDir: '/var/lib/postgresql/15/main', PgVersion: 150010, SystemIdentifier: SYSTEM_IDENTIFIER, WalSegmentSize: 16 << 20,
    UncompressedSize: 9000 * parts.length, CompressedSize: 5000 * parts.length, Compression: 'zstd', Label: 'walship backup-push',
    IsPermanent: options.permanent ?? false, UserData: null, Parts: parts, WalshipVersion: '0.1.0',
  };
  await writeBackupDocuments(storage, sentinel, { createOnly: true });
  return sentinel;
}

/** A source with an identity, segments 1 to 8, a history-less timeline 1, and backups starting in segments 3 and 6. */
async function populatedSource() {
  const source = await archive();
  await putRecord(source.storage);
  for (let number = 1; number <= 8; number++) await putWal(source.storage, segment(number));
  const first = await putBackup(source.storage, 3, '2026-11-01T02:00:00Z');
  const second = await putBackup(source.storage, 6, '2026-11-02T02:00:00Z');
  return { ...source, first, second };
}

function copy(source: Storage, target: Storage, settings: Partial<CopySettings> = {}): Promise<CopyReport> {
  return copyArchive({ source, target, selection: { kind: 'all' }, withoutHistory: false, prune: false, dryRun: false, concurrency: 4, ...settings });
}

async function keys(storage: Storage, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for await (const object of storage.list(prefix)) found.push(object.key);
  return found;
}

describe('walship copy', () => {
  it('copies every WAL file and complete backup, with their metadata and the identity, and a second run copies nothing', async () => {
    const source = await populatedSource();
    const target = await archive();
    const report = await copy(source.storage, target.storage);
    assert.deepEqual(report.problems, []);
    assert.equal(report.wal.files, 8);
    assert.deepEqual(report.backups.copied, [source.first.BackupName, source.second.BackupName]);
    assert.deepEqual(await keys(target.storage), await keys(source.storage));
    const key = walKey(segment(1), codecFor('zstd'));
    assert.deepEqual((await target.storage.head(key))!.metadata, (await source.storage.head(key))!.metadata);
    assert.ok(readFileSync(join(target.directory, key)).equals(readFileSync(join(source.directory, key))), 'stored bytes as they are');

    const again = await copy(source.storage, target.storage);
    assert.deepEqual([again.wal.files, again.backups.copied, again.problems], [0, [], []]);
  });

  it('joins both listings by WAL file, whatever the extensions', async () => {
    const source = await archive();
    const target = await archive();
    await putWal(source.storage, segment(1));
    await putWal(source.storage, `${segment(1)}.partial`);
    await putWal(target.storage, segment(1), undefined, 'brotli');
    await putWal(target.storage, segment(2));
    const groups = [];
    for await (const group of joinWal(source.storage, target.storage)) groups.push([group.stem, group.source.map((o) => o.key), group.target.map((o) => o.key)]);
    assert.deepEqual(groups, [
      [segment(1), [`wal_005/${segment(1)}.partial.zst`, `wal_005/${segment(1)}.zst`], [`wal_005/${segment(1)}.br`]],
      [segment(2), [], [`wal_005/${segment(2)}.zst`]],
    ]);
  });

  it('never copies an object that fails its check, and never writes the sentinel of a backup with such a part', async () => {
    const source = await populatedSource();
    const target = await archive();
    // Segment 2 as an older walship stored it, with no record of its bytes: its content is decoded and checked.
    const walPath = join(source.directory, walKey(segment(2), codecFor('zstd')));
    const metadataPath = join(source.directory, '.walship', 'metadata', `${walKey(segment(2), codecFor('zstd'))}.json`);
    const { stored_crc32: _, ...olderMetadata } = JSON.parse(readFileSync(metadataPath, 'utf8')) as Record<string, string>;
    writeFileSync(metadataPath, JSON.stringify(olderMetadata));
    writeFileSync(walPath, await zstdOf(source.storage, randomBytes(3000)));
    // Segment 4's bytes damaged at rest: the CRC-32 file storage recorded of them tells, with no decoding.
    const damagedPath = join(source.directory, walKey(segment(4), codecFor('zstd')));
    const damaged = readFileSync(damagedPath);
    damaged[damaged.length >> 1]! ^= 0x01;
    writeFileSync(damagedPath, damaged);
    const partPath = join(source.directory, partKey(source.second.BackupName, 'part_002.tar.zst'));
    writeFileSync(partPath, randomBytes(5000));
    const report = await copy(source.storage, target.storage);
    // WAL files are checked several at once: their problems come in the order their checks end.
    const problems = [...report.problems.slice(0, 2).sort(), ...report.problems.slice(2)];
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems[0]!, /000000010000000000000002\.zst is corrupt: CRC-32 .* does not match/);
    assert.match(problems[1]!, /000000010000000000000004\.zst is corrupt: CRC-32 .* does not match/);
    assert.match(problems[2]!, /part_002\.tar\.zst is corrupt: SHA-256/);
    assert.match(problems[3]!, /backup base_000000010000000000000006 was not copied/);
    for (const number of [2, 4]) assert.equal(existsSync(join(target.directory, walKey(segment(number), codecFor('zstd')))), false);
    assert.equal(existsSync(join(target.directory, sentinelKey(source.second.BackupName))), false);
    assert.deepEqual(report.backups.copied, [source.first.BackupName]);
  });

  it('never replaces what the target holds under a name, and reports different content', async () => {
    const source = await populatedSource();
    const target = await archive();
    const planted = await putWal(target.storage, segment(4), randomBytes(100));
    const before = readFileSync(join(target.directory, planted));
    const report = await copy(source.storage, target.storage);
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0]!, /wal_005\/000000010000000000000004\.zst: .* holds \d+ bytes under this name, the source \d+; not overwritten/);
    assert.ok(readFileSync(join(target.directory, planted)).equals(before));
    assert.equal(report.wal.files, 7);
  });

  it('refuses a target that holds another cluster\'s archive, copying nothing', async () => {
    const source = await populatedSource();
    const target = await archive();
    await putRecord(target.storage, '7000000000000000999');
    await assert.rejects(copy(source.storage, target.storage), /holds the archive of the cluster with system identifier 7000000000000000999.*nothing was copied/);
    assert.deepEqual(await keys(target.storage), [ARCHIVE_IDENTITY_KEY]);
  });

  it("carries the source's record of its encryption, so the copy accepts and refuses writes as the source does", async () => {
    const source = await populatedSource();
    const target = await archive();
    await putRecord(source.storage, SYSTEM_IDENTIFIER, { Encryption: 'none' });
    await copy(source.storage, target.storage);
    const recordAt = (directory: string) => readFileSync(join(directory, ARCHIVE_IDENTITY_KEY), 'utf8');
    assert.equal(recordAt(target.directory), recordAt(source.directory));
    const facts = { systemIdentifier: SYSTEM_IDENTIFIER, segmentSize: 16 << 20 };
    const keyed = withKey(target.storage, 'the archive key');
    await assert.rejects(new ArchiveIdentity(keyed, 'WALG_FILE_PREFIX').requireCluster(facts, 'the server is'), /is recorded as unencrypted .*run `walship encryption-on`/);

    // encryption-on at the source: the next copy (a dry run says nothing, writes nothing) gives the copy the switch.
    await switchOnEncryption(withKey(source.storage, 'the archive key'), 'WALG_FILE_PREFIX');
    await copy(source.storage, target.storage, { dryRun: true });
    assert.match(recordAt(target.directory), /"Encryption":"none"/);
    await copy(source.storage, target.storage);
    assert.equal(recordAt(target.directory), recordAt(source.directory));
    assert.equal(JSON.parse(recordAt(target.directory)).EncryptionKeyId, await keyIdOf(keyed.encryption!));
    await new ArchiveIdentity(keyed, 'WALG_FILE_PREFIX').requireCluster(facts, 'the server is');
    await assert.rejects(new ArchiveIdentity(target.storage, 'WALG_FILE_PREFIX').requireCluster(facts, 'the server is'), /is encrypted .*but no key is configured here/);
  });

  it('refuses a target that records another encryption than the source, also in a dry run, copying nothing', async () => {
    const copyRecord = { Encryption: 'libsodium', EncryptionKeyId: 'bbbb' };
    const cases: { source: Record<string, string>; says: string }[] = [
      { source: { Encryption: 'libsodium', EncryptionKeyId: 'aaaa' }, says: 'encrypted \\(libsodium, key id aaaa\\)' },
      { source: { Encryption: 'none' }, says: 'unencrypted' },
    ];
    for (const { source: sourceRecord, says } of cases) {
      const source = await populatedSource();
      await putRecord(source.storage, SYSTEM_IDENTIFIER, sourceRecord);
      const target = await archive();
      await putRecord(target.storage, SYSTEM_IDENTIFIER, copyRecord);
      for (const dryRun of [true, false]) {
        await assert.rejects(
          copy(source.storage, target.storage, { dryRun }),
          new RegExp(`walship/archive\\.json in .* records the archive as encrypted \\(libsodium, key id bbbb\\), but in .* as ${says}: .*nothing was copied`),
        );
      }
      assert.deepEqual(await keys(target.storage), [ARCHIVE_IDENTITY_KEY]);
    }
  });

  it('resumes a backup whose copy stopped before its sentinel, copying only the parts still missing', async () => {
    const source = await populatedSource();
    const target = await archive();
    const name = source.first.BackupName;
    const firstPart = partKey(name, 'part_001.tar.zst');
    await target.storage.put(firstPart, Readable.from([readFileSync(join(source.directory, firstPart))]));
    const report = await copy(source.storage, target.storage, { selection: { kind: 'backup', name }, withoutHistory: true });
    assert.deepEqual(report.backups.copied, [name]);
    assert.equal(report.backups.objects, 1, 'part 2 only');
    assert.equal(report.wal.files, 1, 'the WAL it needs to become consistent: segment 3');
    assert.ok(existsSync(join(target.directory, sentinelKey(name))));
  });

  it('copies one backup and the WAL from its start on', async () => {
    const source = await populatedSource();
    const target = await archive();
    const report = await copy(source.storage, target.storage, { selection: { kind: 'backup', name: source.second.BackupName } });
    assert.deepEqual(report.backups.copied, [source.second.BackupName]);
    assert.deepEqual((await keys(target.storage, 'wal_005/')).map((key) => key.slice(8, 32)), [6, 7, 8].map(segment));
  });

  it("follows the source's permanent mark, and reports a backup that differs otherwise", async () => {
    const source = await populatedSource();
    const target = await archive();
    await copy(source.storage, target.storage);
    await markBackup(source.storage, source.first.BackupName, true);
    const report = await copy(source.storage, target.storage);
    assert.deepEqual([report.backups.marked, report.problems], [[source.first.BackupName], []]);
    assert.equal(JSON.parse(readFileSync(join(target.directory, sentinelKey(source.first.BackupName)), 'utf8')).IsPermanent, true);

    const changed = { ...JSON.parse(readFileSync(join(target.directory, sentinelKey(source.second.BackupName)), 'utf8')), FinishLSN: '0/7000000' };
    writeFileSync(join(target.directory, sentinelKey(source.second.BackupName)), JSON.stringify(changed));
    const differs = await copy(source.storage, target.storage);
    assert.match(differs.problems.join('\n'), /backup base_000000010000000000000006: .* differs from the source's; left as it is/);
  });

  it('changes nothing in a dry run', async () => {
    const source = await populatedSource();
    const target = await archive();
    const report = await copy(source.storage, target.storage, { dryRun: true });
    assert.deepEqual([report.wal.files, report.backups.copied.length], [8, 2]);
    assert.deepEqual(await keys(target.storage), []);
  });

  describe('--prune', () => {
    /** Both sides in sync, then the source's retention deletes the first backup and the WAL before the second's start. */
    async function afterRetention() {
      const source = await populatedSource();
      const target = await archive();
      await copy(source.storage, target.storage);
      for (const number of [1, 2, 3, 4, 5]) await source.storage.delete(walKey(segment(number), codecFor('zstd')));
      await source.storage.delete(sentinelKey(source.first.BackupName));
      for (const key of await keys(source.storage, `basebackups_005/${source.first.BackupName}/`)) await source.storage.delete(key);
      return { source, target };
    }

    it('deletes nothing without it', async () => {
      const { source, target } = await afterRetention();
      const before = await keys(target.storage);
      const report = await copy(source.storage, target.storage);
      assert.deepEqual([report.pruned, report.problems], [{ walFiles: 0, backups: [], folders: [], dumps: [], dumpFolders: [] }, []]);
      assert.deepEqual(await keys(target.storage), before);
    });

    it('deletes what retention deleted at the source, and nothing the source holds', async () => {
      const { source, target } = await afterRetention();
      const report = await copy(source.storage, target.storage, { prune: true });
      assert.deepEqual(report.pruned, { walFiles: 5, backups: [source.first.BackupName], folders: [], dumps: [], dumpFolders: [] });
      assert.deepEqual(report.keptByPrune, []);
      assert.deepEqual(await keys(target.storage), await keys(source.storage));
    });

    it('keeps what retention never deletes: WAL from the newest backup on, a permanent backup, a backup newer than the newest', async () => {
      const { source, target } = await afterRetention();
      // Lost at the source, not deleted by retention.
      await source.storage.delete(walKey(segment(7), codecFor('zstd')));
      await markBackup(target.storage, source.first.BackupName, true);
      const third = await putBackup(target.storage, 7, '2026-11-03T02:00:00Z');
      const report = await copy(source.storage, target.storage, { prune: true });
      assert.equal(report.pruned.walFiles, 5);
      assert.deepEqual(report.pruned.backups, []);
      assert.ok(existsSync(join(target.directory, walKey(segment(7), codecFor('zstd')))));
      assert.match(report.keptByPrune.join('\n'), /kept 1 WAL file the source lacks, from 000000010000000000000007 on/);
      assert.match(report.keptByPrune.join('\n'), new RegExp(`kept backup ${source.first.BackupName}: it is permanent`));
      assert.match(report.keptByPrune.join('\n'), new RegExp(`kept backup ${third.BackupName}: it is not older than the source's newest backup`));
    });

    it('prunes nothing when the source holds no complete backup', async () => {
      const { source, target } = await afterRetention();
      await source.storage.delete(sentinelKey(source.second.BackupName));
      const report = await copy(source.storage, target.storage, { prune: true });
      assert.deepEqual(report.pruned, { walFiles: 0, backups: [], folders: [], dumps: [], dumpFolders: [] });
      assert.match(report.keptByPrune.join('\n'), /no WAL pruned: .* holds no complete backup/);
    });
  });
});

async function zstdOf(storage: Storage, content: Buffer): Promise<Buffer> {
  const { Pipeline } = await import('../../src/stages/pipeline.ts');
  const chunks: Buffer[] = [];
  for await (const piece of new Pipeline(Readable.from([content]), storedFormStages(storage, codecFor('zstd'), 1)).pieces()) chunks.push(piece);
  return Buffer.concat(chunks);
}
