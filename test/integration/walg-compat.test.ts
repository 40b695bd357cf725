// Sharing a bucket with WAL-G, both ways, on a real PostgreSQL 15. WAL-G
// itself cannot be installed here, so its side is played by fixtures built
// from WAL-G's format (shared REFERENCE.md section 7 and WAL-G's source),
// never by walship's writer: WAL archived with the lz4 and xz commands, and
// a base backup laid out as WAL-G's backup-push lays it out, from a real
// pg_basebackup. walship reads and restores them; and a walship backup is read
// the way WAL-G reads one (its field names and JSON types, pg_control.tar).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';
import { type TestMember, tarArchive } from '../support/tar.ts';

/** archive_command in WAL-G's layout: lz4 frames (WAL-G's default), and LZMA alone for names ending in 0, 5, A or F. */
const ARCHIVE_SCRIPT = `#!/bin/sh
set -e
case "$2" in
  *[05AF]) ext=lzma; set -- "$1" "$2" xz --format=lzma -1 -c ;;
  *) ext=lz4; set -- "$1" "$2" lz4 -q -c ;;
esac
file="$1"; name="$2"; shift 2
"$@" "$file" > "$WALG_ARCHIVE/wal_005/.$name.tmp"
mv "$WALG_ARCHIVE/wal_005/.$name.tmp" "$WALG_ARCHIVE/wal_005/$name.$ext"
`;

/** WAL-G's sentinel and metadata.json field names and the JSON type of each (internal/databases/postgres/backup_sentinel_dto.go). */
const WALG_SENTINEL_TYPES: Record<string, string> = {
  LSN: 'number', FinishLSN: 'number', PgVersion: 'number', SystemIdentifier: 'number', UncompressedSize: 'number', CompressedSize: 'number',
  IsPermanent: 'boolean', Version: 'number', StartTime: 'string', FinishTime: 'string', Hostname: 'string', DataDir: 'string', FilesMetadataDisabled: 'boolean',
};
const WALG_SENTINEL_FIELDS = ['LSN', 'DeltaLSN', 'DeltaFrom', 'DeltaFullName', 'DeltaCount', 'PgVersion', 'FinishLSN', 'SystemIdentifier', 'UncompressedSize',
  'CompressedSize', 'DataCatalogSize', 'Spec', 'UserData', 'FilesMetadataDisabled', 'ChkpNum', 'DeltaChkpNum', 'Version', 'StartTime', 'FinishTime', 'DateFmt',
  'Hostname', 'DataDir', 'IsPermanent', 'Files', 'TarFileSets', 'DatabasesByNames', 'DeltaFromLSN'];
const WALG_METADATA_TYPES: Record<string, string> = {
  start_time: 'string', finish_time: 'string', date_fmt: 'string', hostname: 'string', data_dir: 'string', pg_version: 'number', start_lsn: 'number',
  finish_lsn: 'number', is_permanent: 'boolean', system_identifier: 'number', uncompressed_size: 'number', compressed_size: 'number',
};
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** JSON parsed as a Go program sees it: each value with its JSON source text, so a number's exact digits can be checked. */
function parseWithSources(text: string): Record<string, { value: unknown; source: string | undefined }> {
  const sources = new WeakMap<object, Record<string, string | undefined>>();
  const document = JSON.parse(text, function (this: object, key: string, value: unknown, context?: { source?: string }) {
    if (key !== '') sources.set(this, { ...sources.get(this), [key]: context?.source });
    return value;
  }) as Record<string, unknown>;
  const top = sources.get(document) ?? {};
  return Object.fromEntries(Object.entries(document).map(([key, value]) => [key, { value, source: top[key] }]));
}

function lsnOf(text: string): bigint {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** Every path under `directory`, relative, directories before what they hold. */
function walk(directory: string, under = ''): string[] {
  const paths: string[] = [];
  for (const entry of readdirSync(join(directory, under), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = under ? `${under}/${entry.name}` : entry.name;
    paths.push(path);
    if (entry.isDirectory() && path !== 'pg_wal') paths.push(...walk(directory, path)); // WAL-G stores pg_wal empty
  }
  return paths;
}

describe('sharing an archive with WAL-G', () => {
  let root: string;
  let archive: string;
  let primary: PostgresCluster;
  let systemIdentifier: string;
  let walgBackup: string;
  const env = () => ({ ...process.env, WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}`, ...libpq(primary) });
  const walship = (args: string[], extra: Record<string, string> = {}) => run(walshipBinary, args, { asPostgres: true, env: { ...env(), ...extra } });
  const cleanups: (() => Promise<void> | void)[] = [];

  /**
   * A base backup as WAL-G's backup-push stores it, from pg_basebackup's
   * plain copy: parts of "/"-rooted members (pg_wal empty), backup_label and
   * tablespace_map in backup_label.tar, /global/pg_control alone in
   * pg_control.tar, all lz4; files_metadata.json, metadata.json and the
   * Version 2 sentinel with numeric LSNs. One stray file is left out of
   * files_metadata.json, so WAL-G (and walship) must not restore it.
   */
  async function walgBackupFromBasebackup(): Promise<string> {
    const copy = join(makePostgresOwnedDirectory('walship-walg-copy-'), 'data');
    cleanups.push(() => rmSync(join(copy, '..'), { recursive: true, force: true }));
    await primary.client('pg_basebackup', ['-D', copy, '-Fp', '-X', 'none', '-c', 'fast']);
    writeFileSync(join(copy, 'walg_unlisted_file'), 'files_metadata.json does not list me');
    const label = readFileSync(join(copy, 'backup_label'), 'utf8');
    const manifest = JSON.parse(readFileSync(join(copy, 'backup_manifest'), 'utf8')) as { 'WAL-Ranges': { 'End-LSN': string }[] };
    const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(label)!;
    const name = `base_${start[2]}`;
    const startLsn = lsnOf(start[1]!);
    const finishLsn = lsnOf(manifest['WAL-Ranges'][0]!['End-LSN']);

    const member = (path: string): TestMember => {
      const stats = statSync(join(copy, path));
      return stats.isDirectory() ? { name: `/${path}`, type: '5', mode: 0o700 } : { name: `/${path}`, content: readFileSync(join(copy, path)), mode: 0o600 };
    };
    const data = walk(copy).filter((path) => !['backup_label', 'tablespace_map', 'backup_manifest', 'global/pg_control'].includes(path));
    const half = Math.floor(data.length / 2);
    const tars: Record<string, TestMember[]> = {
      'part_001.tar.lz4': [{ name: '/', type: '5', mode: 0o700 }, ...data.slice(0, half).map(member)],
      'part_002.tar.lz4': data.slice(half).map(member),
      'backup_label.tar.lz4': [{ name: 'backup_label', content: label }, { name: 'tablespace_map', content: '' }],
      'pg_control.tar.lz4': [member('global/pg_control')],
    };
    const partitions = join(archive, 'basebackups_005', name, 'tar_partitions');
    mkdirSync(partitions, { recursive: true });
    let uncompressed = 0;
    let compressed = 0;
    for (const [part, members] of Object.entries(tars)) {
      const tar = tarArchive(members);
      const stored = execFileSync('lz4', ['-q', '-c'], { input: tar, maxBuffer: 1 << 30 });
      writeFileSync(join(partitions, part), stored);
      uncompressed += tar.length;
      compressed += stored.length;
    }
    const files = Object.fromEntries(
      data.filter((path) => path !== 'walg_unlisted_file' && statSync(join(copy, path)).isFile())
        .map((path) => [`/${path}`, { IsIncremented: false, IsSkipped: false, MTime: '2026-12-01T10:00:00.123456789+01:00', UpdatesCount: 0 }]),
    );
    writeFileSync(join(archive, 'basebackups_005', name, 'files_metadata.json'), JSON.stringify({ Files: files, TarFileSets: { 'part_001.tar.lz4': Object.keys(files) } }));
    const pgVersion = await primary.sql('SHOW server_version_num');
    const finishTime = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1456789Z');
    // WAL-G's backup-mark changed metadata.json only: the backup is permanent, though its sentinel says otherwise.
    writeFileSync(join(archive, 'basebackups_005', name, 'metadata.json'),
      `{"start_time":"2026-12-01T11:00:00.5+01:00","finish_time":"${finishTime}","date_fmt":"%Y-%m-%dT%H:%M:%S.%fZ","hostname":"walg-host",` +
      `"data_dir":"/var/lib/postgresql/15/main","pg_version":${pgVersion},"start_lsn":${startLsn},"finish_lsn":${finishLsn},"is_permanent":true,` +
      `"system_identifier":${systemIdentifier},"uncompressed_size":${uncompressed},"compressed_size":${compressed},"user_data":{"made_by":"wal-g"}}`);
    writeFileSync(join(archive, 'basebackups_005', `${name}_backup_stop_sentinel.json`),
      `{"LSN":${startLsn},"PgVersion":${pgVersion},"FinishLSN":${finishLsn},"SystemIdentifier":${systemIdentifier},"UncompressedSize":${uncompressed},` +
      `"CompressedSize":${compressed},"DataCatalogSize":${uncompressed},"UserData":{"made_by":"wal-g"},"ChkpNum":null,"Version":2,` +
      `"StartTime":"2026-12-01T11:00:00.5+01:00","FinishTime":"${finishTime}","DateFmt":"%Y-%m-%dT%H:%M:%S.%fZ","Hostname":"walg-host",` +
      `"DataDir":"/var/lib/postgresql/15/main","IsPermanent":false}`);
    execFileSync('chown', ['-R', 'postgres:', archive]);
    return name;
  }

  /** An empty file archive for walship copy --to, and its config file. */
  function copyTarget(prefix: string): { copyConfig: string; copyArchive: string } {
    const copyRoot = makePostgresOwnedDirectory(prefix);
    cleanups.push(() => rmSync(copyRoot, { recursive: true, force: true }));
    const copyConfig = join(copyRoot, 'copy.yaml');
    const copyArchive = join(copyRoot, 'archive');
    mkdirSync(copyArchive);
    writeFileSync(copyConfig, `WALG_FILE_PREFIX: ${copyArchive}\n`);
    execFileSync('chown', ['-R', 'postgres:', copyRoot]);
    return { copyConfig, copyArchive };
  }

  before(async () => {
    root = makePostgresOwnedDirectory('walship-walg-');
    archive = join(root, 'archive');
    mkdirSync(join(archive, 'wal_005'), { recursive: true });
    writeFileSync(join(root, 'archive.sh'), ARCHIVE_SCRIPT);
    chmodSync(join(root, 'archive.sh'), 0o755);
    execFileSync('chown', ['-R', 'postgres:', root]);
    primary = await PostgresCluster.init({
      env: { WALG_ARCHIVE: archive },
      settings: { archive_mode: 'on', archive_command: `/bin/sh ${join(root, 'archive.sh')} %p %f`, wal_keep_size: '1GB' },
    });
    await primary.start();
    systemIdentifier = await primary.sql('SELECT system_identifier FROM pg_control_system()');
    assert.ok(BigInt(systemIdentifier) > BigInt(Number.MAX_SAFE_INTEGER), 'a real system identifier is above 2^53');
    await primary.pgbench(['-i', '-s', '1', '-q']);
    await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)');
    await primary.sql("INSERT INTO marker (phase) SELECT 'before-backup' FROM generate_series(1, 1000)");
    walgBackup = await walgBackupFromBasebackup();
    await primary.sql("INSERT INTO marker (phase) SELECT 'after-backup' FROM generate_series(1, 1000)");
    for (let i = 0; i < 6; i++) {
      await primary.sql(`INSERT INTO marker (phase) SELECT 'after-backup-${i}' FROM generate_series(1, 100)`);
      await primary.switchAndWaitArchived();
    }
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  it('wal-fetch restores .lz4 and .lzma objects made by the lz4 and xz commands byte for byte; wal-push finds them', async () => {
    const stored = readdirSync(join(archive, 'wal_005')).filter((name) => /^[0-9A-F]{24}\.(lz4|lzma)$/.test(name));
    const extensions = new Set(stored.map((name) => name.split('.')[1]));
    assert.deepEqual([...extensions].sort(), ['lz4', 'lzma'], `both formats archived: ${stored.join(' ')}`);
    const out = makePostgresOwnedDirectory('walship-walg-fetch-');
    cleanups.push(() => rmSync(out, { recursive: true, force: true }));
    for (const object of stored) {
      const [name, extension] = object.split('.') as [string, string];
      // WAL-G's own setting may name lz4: wal-fetch then looks for .lz4 first, and finds the rest all the same.
      const fetched = await walship(['wal-fetch', name, join(out, name)], stored.indexOf(object) % 2 ? { WALG_COMPRESSION_METHOD: 'lz4' } : {});
      assert.equal(fetched.code, 0, fetched.stderr);
      const reference = extension === 'lz4'
        ? execFileSync('lz4', ['-d', '-c', join(archive, 'wal_005', object)], { maxBuffer: 1 << 30 })
        : execFileSync('xz', ['-d', '--format=lzma', '-c', join(archive, 'wal_005', object)], { maxBuffer: 1 << 30 });
      assert.ok(readFileSync(join(out, name)).equals(reference), `${object} fetched byte for byte`);
      const original = join(primary.dataDir, 'pg_wal', name);
      if (existsSync(original)) assert.ok(readFileSync(original).equals(reference), `${object} is the segment PostgreSQL wrote`);
    }
    // wal-push of a segment WAL-G archived finds its .lz4 copy, compares it, and stores no second copy.
    const archived = stored.find((object) => object.endsWith('.lz4') && existsSync(join(primary.dataDir, 'pg_wal', object.slice(0, 24))))!;
    const segment = archived.slice(0, 24);
    const pushed = await run(walshipBinary, ['wal-push', `pg_wal/${segment}`], { asPostgres: true, env: env(), cwd: primary.dataDir });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.deepEqual(readdirSync(join(archive, 'wal_005')).filter((name) => name.startsWith(segment)), [archived]);
  });

  it('lists the WAL-G backup with its exact numbers and the permanent mark of its metadata.json', async () => {
    const listed = await walship(['backup-list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const backup = (JSON.parse(listed.stdout) as Record<string, unknown>[]).find((entry) => entry.backup_name === walgBackup);
    assert.ok(backup, listed.stdout);
    assert.equal(backup.written_by, 'WAL-G');
    assert.equal(backup.system_identifier, systemIdentifier);
    assert.equal(backup.is_permanent, true);
    assert.equal(backup.start_time, '2026-12-01T10:00:00.500Z');
    assert.deepEqual(backup.user_data, { made_by: 'wal-g' });
  });

  it('backup-fetch restores the WAL-G backup, and PostgreSQL recovers it from the lz4 and lzma archive', async () => {
    const restoreRoot = makePostgresOwnedDirectory('walship-walg-restore-');
    cleanups.push(() => rmSync(restoreRoot, { recursive: true, force: true }));
    const dataDir = join(restoreRoot, 'data');
    const fetched = await walship(['backup-fetch', dataDir, walgBackup]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stderr, /a WAL-G backup, not verified: WAL-G keeps no checksums of its parts and wrote no backup_manifest; only the LZ4 frames' own checksums checked the content/);
    assert.ok(!existsSync(join(dataDir, 'walg_unlisted_file')), 'a file files_metadata.json does not list is not restored');
    assert.ok(existsSync(join(dataDir, 'global', 'pg_control')));
    assert.ok(statSync(join(dataDir, 'pg_wal')).isDirectory());
    const expectedRows = await primary.sql('SELECT count(*) FROM marker');
    const restored = await PostgresCluster.adopt(dataDir, restoreRoot, { settings: { archive_mode: 'off' } });
    cleanups.push(() => restored.destroy());
    await restored.start();
    await restored.waitPromoted();
    assert.equal(await restored.sql('SELECT count(*) FROM marker'), expectedRows);
    assert.equal(await restored.sql("SELECT count(*) FROM marker WHERE phase = 'before-backup'"), '1000');
    assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '100000');
    assert.match(readFileSync(restored.logFile, 'utf8'), /archive recovery complete/);
  });

  it('copy takes the WAL-G backup whole, sentinel last, with its lz4 and lzma WAL; PostgreSQL recovers from the copy alone', async () => {
    const { copyConfig, copyArchive } = copyTarget('walship-walg-copy-');
    const copied = await walship(['copy', '--to', copyConfig, '--json']);
    assert.equal(copied.code, 0, copied.stderr);
    const report = (JSON.parse(copied.stdout) as { targets: { report: { backups: { copied: string[] } } }[] }).targets[0]!.report;
    assert.ok(report.backups.copied.includes(walgBackup), copied.stdout);

    // Every object of the backup's folder (files_metadata.json and metadata.json too) and every WAL file, byte for byte.
    for (const folder of [join('basebackups_005', walgBackup), 'wal_005']) {
      const held = filesUnder(join(archive, folder)).map((path) => path.slice(archive.length));
      assert.ok(held.length > 0);
      for (const path of held) assert.ok(readFileSync(join(copyArchive, path)).equals(readFileSync(join(archive, path))), `${path} copied as stored`);
    }
    const sentinel = join(copyArchive, 'basebackups_005', `${walgBackup}_backup_stop_sentinel.json`);
    const newestObject = Math.max(...filesUnder(join(copyArchive, 'basebackups_005', walgBackup)).map((path) => statSync(path).mtimeMs));
    assert.ok(statSync(sentinel).mtimeMs >= newestObject, 'the sentinel is written after every object of the backup');
    const listed = await walship(['backup-list', '--json'], { WALG_FILE_PREFIX: copyArchive });
    assert.equal((JSON.parse(listed.stdout) as { backup_name: string; is_permanent: boolean }[]).find((entry) => entry.backup_name === walgBackup)?.is_permanent, true);

    // The main archive out of reach: recovery replays from the copy alone.
    const restoreRoot = makePostgresOwnedDirectory('walship-walg-copy-restore-');
    cleanups.push(() => rmSync(restoreRoot, { recursive: true, force: true }));
    const dataDir = join(restoreRoot, 'data');
    const expectedRows = await primary.sql('SELECT count(*) FROM marker');
    const hidden = `${archive}.hidden`;
    execFileSync('mv', [archive, hidden]);
    try {
      const fetched = await walship(['backup-fetch', dataDir, walgBackup], { WALG_FILE_PREFIX: copyArchive });
      assert.equal(fetched.code, 0, fetched.stderr);
      const restored = await PostgresCluster.adopt(dataDir, restoreRoot, { settings: { archive_mode: 'off' } });
      cleanups.push(() => restored.destroy());
      await restored.start();
      await restored.waitPromoted();
      assert.equal(await restored.sql('SELECT count(*) FROM marker'), expectedRows);
      await restored.stop();
    } finally {
      execFileSync('mv', [hidden, archive]);
    }
  });

  it('copy checks what a WAL-G part allows, its LZ4 frames: a damaged part is not copied and the backup gets no sentinel at the copy', async () => {
    const { copyConfig, copyArchive } = copyTarget('walship-walg-damaged-');
    const part = join(archive, 'basebackups_005', walgBackup, 'tar_partitions', 'part_002.tar.lz4');
    const original = readFileSync(part);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    writeFileSync(part, damaged);
    try {
      const copied = await walship(['copy', '--to', copyConfig]);
      assert.equal(copied.code, 1, copied.stderr);
      assert.match(copied.stderr, new RegExp(`part_002\\.tar\\.lz4 .*: not copied`));
      assert.match(copied.stderr, new RegExp(`backup ${walgBackup} was not copied: no sentinel was written`));
    } finally {
      writeFileSync(part, original);
    }
    assert.ok(!existsSync(join(copyArchive, 'basebackups_005', `${walgBackup}_backup_stop_sentinel.json`)));
    assert.ok(!existsSync(join(copyArchive, 'basebackups_005', walgBackup, 'tar_partitions', 'part_002.tar.lz4')));
  });

  it('writes a backup WAL-G can read: its sentinel fields with its JSON types, and pg_control.tar uploaded last', async () => {
    const pushed = await walship(['backup-push', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const name = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    const sentinel = parseWithSources(readFileSync(join(archive, 'basebackups_005', `${name}_backup_stop_sentinel.json`), 'utf8'));
    for (const [field, type] of Object.entries(WALG_SENTINEL_TYPES)) assert.equal(typeof sentinel[field]?.value, type, `sentinel ${field} is a ${type}`);
    assert.equal(sentinel.SystemIdentifier!.source, systemIdentifier, 'the system identifier, exact beyond 2^53');
    assert.equal(sentinel.Version!.value, 2);
    assert.equal(sentinel.FilesMetadataDisabled!.value, true, 'WAL-G reads no files_metadata.json and restores every file');
    assert.equal(sentinel.PgVersion!.value, Number(await primary.sql('SHOW server_version_num')));
    const walshipLsn = JSON.parse(pushed.stdout) as { start_lsn: string; finish_lsn: string };
    assert.equal(BigInt(sentinel.LSN!.source!), lsnOf(walshipLsn.start_lsn));
    assert.equal(BigInt(sentinel.FinishLSN!.source!), lsnOf(walshipLsn.finish_lsn));
    for (const time of [sentinel.StartTime!.value, sentinel.FinishTime!.value]) assert.match(String(time), RFC3339);
    // Go matches JSON names case-insensitively: walship's own fields must not meet WAL-G's.
    const walgNames = new Set(WALG_SENTINEL_FIELDS.map((field) => field.toLowerCase()));
    for (const field of Object.keys(sentinel).filter((key) => !WALG_SENTINEL_FIELDS.includes(key))) {
      assert.ok(!walgNames.has(field.toLowerCase()), `walship's ${field} is not a WAL-G field in another case`);
    }
    const metadata = parseWithSources(readFileSync(join(archive, 'basebackups_005', name, 'metadata.json'), 'utf8'));
    for (const [field, type] of Object.entries(WALG_METADATA_TYPES)) assert.equal(typeof metadata[field]?.value, type, `metadata.json ${field} is a ${type}`);
    assert.equal(metadata.system_identifier!.source, systemIdentifier);

    const partitions = join(archive, 'basebackups_005', name, 'tar_partitions');
    const parts = readdirSync(partitions).sort();
    assert.ok(parts.includes('pg_control.tar.zst'), `pg_control.tar.zst among ${parts.join(' ')}`);
    const controlTar = zstdDecompressSync(readFileSync(join(partitions, 'pg_control.tar.zst')));
    assert.equal(controlTar.subarray(0, 100).toString('utf8').replace(/\0+$/, ''), 'global/pg_control', 'the part holds global/pg_control');
    assert.equal(controlTar.length, 512 + 8192 + 1024, 'one header, the 8 KiB file, the end of the archive');
    assert.ok(controlTar.subarray(512 + 8192).every((byte) => byte === 0));
    for (const part of parts.filter((part) => part !== 'pg_control.tar.zst')) {
      assert.ok(!zstdDecompressSync(readFileSync(join(partitions, part))).includes('global/pg_control\0'), `${part} does not hold pg_control`);
      assert.ok(statSync(join(partitions, part)).mtimeMs <= statSync(join(partitions, 'pg_control.tar.zst')).mtimeMs, `${part} was stored before pg_control.tar.zst`);
    }
    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string; written_by: string }[];
    assert.deepEqual(listed.map((backup) => [backup.backup_name, backup.written_by]).sort(), [[name, 'walship'], [walgBackup, 'WAL-G']].sort());
  });
});
