// backup-push and backup-fetch when things go wrong: every failure exits
// non-zero with one clear line, leaves no sentinel (so nothing is listed),
// and never writes outside the restore destination.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { libpq } from '../support/libpq.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';
import { tarArchive, type TestMember } from '../support/tar.ts';

const BACKUPS = 'basebackups_005';

describe('backup failures', () => {
  let archive: string;
  let scratch: string;
  let cluster: PostgresCluster;
  let env: Record<string, string>;

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster), ...extraEnv } });

  /** Files under basebackups_005/ (file storage may keep emptied directories). */
  const storedBackupFiles = () =>
    existsSync(join(archive, BACKUPS))
      ? readdirSync(join(archive, BACKUPS), { recursive: true }).map(String).filter((name) => statSync(join(archive, BACKUPS, name)).isFile())
      : [];

  /** Stores a backup made of the given tar parts (uncompressed), with a valid sentinel. */
  function craftBackup(name: string, parts: Buffer[], corruptAfterChecksum = false): void {
    const directory = join(archive, BACKUPS, name, 'tar_partitions');
    mkdirSync(directory, { recursive: true });
    const described = parts.map((part, index) => {
      const partName = `part_00${index + 1}.tar`;
      const sha256 = createHash('sha256').update(part).digest('hex');
      if (corruptAfterChecksum) part[600] = part[600]! ^ 1;
      writeFileSync(join(directory, partName), part);
      return { Name: partName, UncompressedSize: part.length, CompressedSize: part.length, SHA256: sha256 };
    });
    const sentinel = {
      BackupName: name, LSN: '0/9000028', FinishLSN: '0/9000100', Timeline: 1, StartTime: '2026-01-01T00:00:00.000Z',
      FinishTime: '2026-01-01T00:00:01.000Z', Hostname: 'crafted', DataDir: '/nowhere', PgVersion: 150000,
      SystemIdentifier: '1', UncompressedSize: 0, CompressedSize: 0, Compression: 'none', Label: 'crafted',
      IsPermanent: false, UserData: null, Parts: described, WalshipVersion: 'test',
    };
    writeFileSync(join(archive, BACKUPS, `${name}_backup_stop_sentinel.json`), JSON.stringify(sentinel));
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    scratch = makePostgresOwnedDirectory('walship-scratch-');
    env = { WALG_FILE_PREFIX: archive, WALG_TAR_SIZE_THRESHOLD: String(1 << 20), PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await cluster.start();
    await cluster.pgbench(['-i', '-s', '2', '-q']);
  });

  after(async () => {
    await cluster?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it('says clearly when the server cannot be reached', async () => {
    const result = await walship(['backup-push'], { PGPORT: '1', PGPASSWORD: 'hunter2-secret' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot query the PostgreSQL server: .*; check PGHOST and PGPORT, and that the server is running/);
    assert.ok(!result.stderr.includes('hunter2-secret'));
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  });

  it('pg_basebackup killed midway: non-zero exit, no sentinel, nothing listed, parts removed', async () => {
    // A pg_basebackup slowed to 2 MB/s that records its PID, so the test can kill it mid-stream.
    const pidFile = join(scratch, 'pg_basebackup.pid');
    const wrapper = join(scratch, 'slow-pg_basebackup');
    writeFileSync(wrapper, `#!/bin/sh\necho $$ > ${pidFile}\nexec ${postgresBin}/pg_basebackup --max-rate=2M "$@"\n`);
    chmodSync(wrapper, 0o755);
    giveToPostgres(wrapper);
    const pushing = walship(['backup-push', '--pg-basebackup', wrapper]);
    const partsDirectory = () => readdirSync(join(archive, BACKUPS), { recursive: true }).filter((name) => /part_\d+\.tar\.zst$/.test(String(name)));
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(archive, BACKUPS)) || partsDirectory().length < 2) {
      assert.ok(Date.now() < deadline, 'backup-push stored no parts in time');
      await sleep(50);
    }
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const result = await pushing;
    assert.equal(result.code, 1);
    assert.match(result.stderr, /pg_basebackup was killed by SIGKILL; no backup was stored/);
    assert.deepEqual(storedBackupFiles(), []);
    const listed = await walship(['backup-list', '--json']);
    assert.equal(listed.stdout.trim(), '[]');
  });

  it('a corrupted part: backup-fetch fails clearly and removes the partial restore', async () => {
    const pushed = await walship(['backup-push', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const name = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    const part = join(archive, BACKUPS, name, 'tar_partitions', 'part_002.tar.zst');
    const bytes = readFileSync(part);
    for (let offset = 100; offset < bytes.length; offset += 997) bytes[offset] = bytes[offset]! ^ 0x5a;
    writeFileSync(part, bytes);
    const destination = join(scratch, 'corrupt-restore');
    const result = await walship(['backup-fetch', destination, name]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${name}/tar_partitions/part_002\\.tar\\.zst is corrupt`));
    assert.ok(!existsSync(destination), 'the partial restore was left behind');
  });

  it('a crafted part with a ../ member is refused, and nothing is written outside', async () => {
    const name = 'base_000000010000000000000090';
    const members: TestMember[] = [{ name: 'backup_label', content: 'label' }, { name: '../escaped', content: 'owned' }];
    craftBackup(name, [tarArchive(members)]);
    const destination = join(scratch, 'unsafe', 'data');
    const result = await walship(['backup-fetch', destination, name]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refusing tar member "\.\.\/escaped": "\.\." would write outside the destination/);
    assert.ok(!existsSync(join(scratch, 'unsafe', 'escaped')));
    assert.ok(!existsSync(destination));
  });

  it('a part whose content does not match its checksum is refused', async () => {
    const name = 'base_000000010000000000000091';
    craftBackup(name, [tarArchive([{ name: 'global/pg_control', content: 'x'.repeat(2000) }])], true);
    const result = await walship(['backup-fetch', join(scratch, 'mismatch'), name]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /part_001\.tar is corrupt: SHA-256 [0-9a-f]{64} does not match the stored [0-9a-f]{64}/);
  });

  it('lists the other backups when one sentinel cannot be read (no finish time in it or in a metadata.json)', async () => {
    const foreign = 'base_0000000100000000000000A0';
    writeFileSync(join(archive, BACKUPS, `${foreign}_backup_stop_sentinel.json`), JSON.stringify({ LSN: 33554472, FinishLSN: 33554720, UserData: {} }));
    const listed = await walship(['backup-list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const names = (JSON.parse(listed.stdout) as { backup_name: string }[]).map((backup) => backup.backup_name);
    assert.ok(names.length >= 3 && !names.includes(foreign), names.join(', '));
    assert.match(listed.stderr, new RegExp(`skipping backup ${foreign}: .* is not a backup sentinel walship can read: it has no finish time, nor has its metadata\\.json`));
    const fetched = await walship(['backup-fetch', join(scratch, 'foreign'), foreign]);
    assert.equal(fetched.code, 1);
    assert.match(fetched.stderr, /is not a backup sentinel walship can read: it has no finish time/);
  });

  it('refuses a cluster with more than one tablespace, saying what to do', async () => {
    const location = makePostgresOwnedDirectory('walship-tablespace-');
    try {
      await cluster.sql(`CREATE TABLESPACE extra LOCATION '${location}'`);
      const result = await walship(['backup-push']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /tablespaces besides pg_default \(extra\): pg_basebackup can stream only one tablespace to stdout\. Move their objects into pg_default/);
    } finally {
      await cluster.sql('DROP TABLESPACE IF EXISTS extra');
      rmSync(location, { recursive: true, force: true });
    }
  });

  it('refuses a server with archive_mode off, explaining why', async () => {
    await cluster.sql('ALTER SYSTEM SET archive_mode = off');
    await cluster.stop();
    await cluster.start();
    const result = await walship(['backup-push']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /archive_mode is off on the server: a backup without archived WAL cannot be recovered past its own end/);
  });
});
