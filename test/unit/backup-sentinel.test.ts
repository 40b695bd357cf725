// Backup sentinels in WAL-G's format, both ways: WAL-G's as WAL-G writes them
// (numbers beyond 2^53, RFC 3339 times with offsets), earlier walship
// versions' (LSNs as strings), and walship's own, written and read back.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type BackupSentinel, decodeSentinel, markBackup, parseExactJson, readSentinel, requireBackupName, writeBackupDocuments } from '../../src/archive/backups.ts';
import { fetchBackup } from '../../src/backup/fetch.ts';
import { FileStorage } from '../../src/storage/file.ts';

const NAME = 'base_000000020000000000000005';
const SYSTEM_IDENTIFIER = '7312345678901234567';
const root = mkdtempSync(join(tmpdir(), 'walship-sentinel-'));
after(() => rmSync(root, { recursive: true, force: true }));

const walgSentinel = `{"LSN":33554472,"PgVersion":150018,"FinishLSN":33554720,"SystemIdentifier":${SYSTEM_IDENTIFIER},"UncompressedSize":3000,` +
  `"CompressedSize":1000,"DataCatalogSize":3000,"UserData":{"a":1},"ChkpNum":null,"Version":2,"StartTime":"2026-12-01T11:00:00.123456789+01:00",` +
  `"FinishTime":"2026-12-01T10:00:05.5Z","DateFmt":"%Y-%m-%dT%H:%M:%S.%fZ","Hostname":"db1","DataDir":"/data","IsPermanent":false}`;

function decode(sentinel: string, metadata?: string): BackupSentinel {
  return decodeSentinel(NAME, { sentinel: parseExactJson(sentinel), metadata: metadata === undefined ? undefined : parseExactJson(metadata) }, 'the sentinel');
}

describe('backup sentinels', () => {
  it("reads WAL-G's: numeric LSNs, the system identifier exactly, times in UTC, the timeline from the name", () => {
    const backup = decode(walgSentinel);
    assert.equal(backup.Writer, 'WAL-G');
    assert.equal(backup.LSN, '0/2000028');
    assert.equal(backup.FinishLSN, '0/2000120');
    assert.equal(backup.SystemIdentifier, SYSTEM_IDENTIFIER);
    assert.equal(backup.StartTime, '2026-12-01T10:00:00.123Z');
    assert.equal(backup.FinishTime, '2026-12-01T10:00:05.500Z');
    assert.equal(backup.Timeline, 2);
    assert.equal(backup.PgVersion, 150018);
    assert.deepEqual(backup.Parts, []);
    assert.equal(backup.FilesMetadata, 'required');
    assert.equal(backup.IsPermanent, false);
  });

  it("takes WAL-G's permanent mark from metadata.json, where WAL-G's backup-mark sets it, and its times when the sentinel has none", () => {
    assert.equal(decode(walgSentinel, '{"is_permanent":true}').IsPermanent, true);
    const version1 = decode('{"LSN":33554472,"FinishLSN":33554720,"PgVersion":150018}', `{"finish_time":"2026-12-01T12:00:00+02:00","is_permanent":true,"system_identifier":${SYSTEM_IDENTIFIER}}`);
    assert.equal(version1.FinishTime, '2026-12-01T10:00:00.000Z');
    assert.equal(version1.SystemIdentifier, SYSTEM_IDENTIFIER);
    assert.equal(version1.FilesMetadata, 'optional');
    assert.equal(decode(walgSentinel.replace('"Version":2', '"Version":2,"FilesMetadataDisabled":true')).FilesMetadata, 'none');
    assert.equal(decode(walgSentinel.replace('"Version":2', '"Version":2,"DeltaFrom":"base_000000020000000000000003"')).DeltaFrom, 'base_000000020000000000000003');
  });

  it('reads sentinels of earlier walship versions (LSNs and the system identifier as strings)', () => {
    const earlier = JSON.stringify({
      BackupName: NAME, LSN: '0/2000028', FinishLSN: '0/2000120', Timeline: 2, StartTime: '2026-12-01T10:00:00.000Z', FinishTime: '2026-12-01T10:00:05.000Z',
      Hostname: 'db1', DataDir: '/data', PgVersion: 150004, SystemIdentifier: SYSTEM_IDENTIFIER, UncompressedSize: 3000, CompressedSize: 1000,
      Compression: 'zstd', Label: 'walship backup-push', IsPermanent: true, UserData: null, WalshipVersion: '0.1.0',
      Parts: [{ Name: 'part_001.tar.zst', UncompressedSize: 3000, CompressedSize: 1000, SHA256: 'ab'.repeat(32) }],
    });
    const backup = decode(earlier, earlier); // their metadata.json was a copy of the sentinel
    assert.equal(backup.Writer, 'walship');
    assert.equal(backup.FinishLSN, '0/2000120');
    assert.equal(backup.SystemIdentifier, SYSTEM_IDENTIFIER);
    assert.equal(backup.IsPermanent, true);
    assert.equal(backup.FilesMetadata, 'none');
    assert.equal(backup.Parts.length, 1);
  });

  it("refuses WAL-G's delta backups, by name and by sentinel, before it touches the destination", async () => {
    assert.throws(() => requireBackupName('base_000000010000000A000000D0_D_000000010000000A000000C9'), /is a WAL-G delta backup: walship restores full backups only; restore it with WAL-G/);
    const delta = decode(walgSentinel.replace('"Version":2', '"Version":2,"DeltaFrom":"base_000000020000000000000003"'));
    const destination = join(root, 'never-created');
    const storage = await FileStorage.open(mkdtempSync(join(root, 'archive-')));
    await assert.rejects(fetchBackup({ storage, downloadConcurrency: 1, destination, force: false }, delta), /is a WAL-G delta backup \(of base_000000020000000000000003\): walship restores full backups only/);
    assert.throws(() => readFileSync(destination), /ENOENT/);
  });

  it('refuses a document without LSNs or a finish time, naming it', () => {
    assert.throws(() => decode('{"FinishTime":"2026-12-01T10:00:05Z"}'), /^WalshipError: the sentinel is not a backup sentinel walship can read: it has no valid LSN and FinishLSN$/);
    assert.throws(() => decode('{"LSN":1,"FinishLSN":2}'), /it has no finish time, nor has its metadata\.json/);
    assert.throws(() => decode('[1]'), /it is not a JSON object/);
  });

  it('writes walship sentinels in WAL-G\'s types, exactly beyond 2^53, and reads them back unchanged', async () => {
    const directory = mkdtempSync(join(root, 'archive-'));
    const storage = await FileStorage.open(directory);
    const backup: BackupSentinel = {
      BackupName: NAME, LSN: 'FFFFFFFF/FFFFFFFF', FinishLSN: 'FFFFFFFF/FFFFFFFF', Timeline: 2, StartTime: '2026-12-01T10:00:00.000Z',
      FinishTime: '2026-12-01T10:00:05.000Z', Hostname: 'db1', DataDir: '/data', PgVersion: 150004, SystemIdentifier: SYSTEM_IDENTIFIER,
      WalSegmentSize: 16 << 20, UncompressedSize: 3000, CompressedSize: 1000, Compression: 'zstd', Label: 'walship backup-push', IsPermanent: false,
      UserData: { ticket: 'DBA-1' }, Parts: [{ Name: 'part_001.tar.zst', UncompressedSize: 3000, CompressedSize: 1000, SHA256: 'ab'.repeat(32) }],
      WalshipVersion: '0.1.0', Writer: 'walship', FilesMetadata: 'none',
    };
    await writeBackupDocuments(storage, backup, { createOnly: true });
    const text = readFileSync(join(directory, 'basebackups_005', `${NAME}_backup_stop_sentinel.json`), 'utf8');
    assert.match(text, /"LSN": 18446744073709551615,/);
    assert.match(text, new RegExp(`"SystemIdentifier": ${SYSTEM_IDENTIFIER},`));
    assert.match(readFileSync(join(directory, 'basebackups_005', NAME, 'metadata.json'), 'utf8'), /"finish_lsn": 18446744073709551615,/);
    assert.deepEqual(await readSentinel(storage, NAME), backup);
  });

  it("marks a WAL-G backup permanent in its metadata.json alone, keeping every other field exactly, as WAL-G's backup-mark does", async () => {
    const directory = mkdtempSync(join(root, 'archive-'));
    const storage = await FileStorage.open(directory);
    mkdirSync(join(directory, 'basebackups_005', NAME), { recursive: true });
    writeFileSync(join(directory, 'basebackups_005', `${NAME}_backup_stop_sentinel.json`), walgSentinel);
    const metadata = `{"start_lsn":33554472,"system_identifier":${SYSTEM_IDENTIFIER},"is_permanent":false,"date_fmt":"%Y"}`;
    writeFileSync(join(directory, 'basebackups_005', NAME, 'metadata.json'), metadata);
    assert.equal((await markBackup(storage, NAME, true)).IsPermanent, true);
    assert.equal(readFileSync(join(directory, 'basebackups_005', `${NAME}_backup_stop_sentinel.json`), 'utf8'), walgSentinel);
    assert.deepEqual(JSON.parse(JSON.stringify(parseExactJson(readFileSync(join(directory, 'basebackups_005', NAME, 'metadata.json'), 'utf8')))), JSON.parse(metadata.replace('false', 'true')));
    assert.match(readFileSync(join(directory, 'basebackups_005', NAME, 'metadata.json'), 'utf8'), new RegExp(`"system_identifier": ${SYSTEM_IDENTIFIER},`));
    assert.equal((await readSentinel(storage, NAME)).IsPermanent, true);
  });
});
