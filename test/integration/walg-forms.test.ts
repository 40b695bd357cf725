// WAL-G's own command forms, so scripts written for WAL-G run unchanged:
// backup-push [PGDATA] and its flags, backup-mark -i, backup-list's flag
// combinations, backup-fetch's and wal-push/wal-fetch's optional flags, and
// --turbo. Flags walship cannot honour are refused with one line.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

interface ListedBackup {
  backup_name: string;
  is_permanent: boolean;
  data_dir: string;
  user_data: unknown;
}

describe("WAL-G's command forms on a real PostgreSQL", () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  const cleanups: (() => void)[] = [];

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });
  const listed = async (): Promise<ListedBackup[]> => {
    const result = await walship(['backup-list', '--json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as ListedBackup[];
  };

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-forms-archive-');
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.sql('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g');
    await primary.sql('CREATE ROLE operator LOGIN REPLICATION');
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) cleanup();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it('backup-push PGDATA with WAL-G flags backs up that cluster, with WALG_SENTINEL_USER_DATA', async () => {
    const pushed = await walship(['backup-push', '-f', '-v', '-s', '--without-files-metadata', '--turbo', '-p', primary.dataDir], {
      WALG_SENTINEL_USER_DATA: '{"by":"wal-g script"}',
    });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.doesNotMatch(pushed.stdout, /walship \d/, '-v is --verify here, not --version');
    const [backup] = await listed();
    assert.ok(backup, 'one backup');
    assert.equal(backup.data_dir, primary.dataDir);
    assert.equal(backup.is_permanent, true);
    assert.deepEqual(backup.user_data, { by: 'wal-g script' });

    // WAL-G's -i, then --impermanent's other spelling back.
    const unmarked = await walship(['backup-mark', '-i', backup.backup_name]);
    assert.equal(unmarked.code, 0, unmarked.stderr);
    assert.equal((await listed())[0]!.is_permanent, false);
  });

  it('backup-push refuses a data directory the server does not run, before anything is stored', async () => {
    const before = readdirSync(join(archive, 'basebackups_005')).sort();
    const other = makePostgresOwnedDirectory('walship-forms-other-');
    cleanups.push(() => rmSync(other, { recursive: true, force: true }));
    const refused = await walship(['backup-push', other]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`backup-push ${other}: the server that PGHOST and PGPORT reach runs the cluster in ${primary.dataDir}`));
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.deepEqual(readdirSync(join(archive, 'basebackups_005')).sort(), before);
  });

  it('backup-push PGDATA goes on, saying so, when the server hides its data directory from the user', async () => {
    const count = (await listed()).length;
    const unchecked = makePostgresOwnedDirectory('walship-forms-unchecked-');
    cleanups.push(() => rmSync(unchecked, { recursive: true, force: true }));
    const pushed = await walship(['backup-push', unchecked], { PGUSER: 'operator', PGDATABASE: 'postgres', WALG_LOG_LEVEL: 'NORMAL' });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, new RegExp(`INFO: the server shows its data_directory only to superusers and pg_read_all_settings members: ${unchecked} is not checked against it`));
    assert.equal((await listed()).length, count + 1);
  });

  it('backup-push refuses delta backups and other storages with one line, before it connects', async () => {
    for (const [args, expected] of [
      [['backup-push', '--delta-from-name', 'base_000000010000000000000002'], /WAL-G's --delta-from-name base_000000010000000000000002 is not supported yet: walship takes full backups only/],
      [['backup-push', '--delta-from-user-data', '{"x":1}'], /WAL-G's --delta-from-user-data \{"x":1\} is not supported yet/],
      [['backup-push', '--target-storage', 'second'], /WAL-G's --target-storage second is not supported yet: walship has one storage/],
    ] as [string[], RegExp][]) {
      const result = await walship(args, { PGHOST: join(archive, 'no-server-here') });
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  });

  it('backup-list takes any combination of --pretty, --detail and --json', async () => {
    const names = (await listed()).map((backup) => backup.backup_name);
    for (const pretty of [false, true]) {
      for (const detail of [false, true]) {
        for (const json of [false, true]) {
          const args = ['backup-list', ...(pretty ? ['--pretty'] : []), ...(detail ? ['--detail'] : []), ...(json ? ['--json'] : []), '--target-storage', 'default'];
          const result = await walship(args);
          assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
          if (json) {
            assert.deepEqual((JSON.parse(result.stdout) as ListedBackup[]).map((backup) => backup.backup_name), names, args.join(' '));
            assert.equal(result.stdout.includes('\n  '), pretty, `${args.join(' ')}: indented only with --pretty`);
          } else {
            for (const name of names) assert.ok(result.stdout.includes(name), `${args.join(' ')}: ${result.stdout}`);
            assert.equal(/start_lsn|finish_time|is_permanent/i.test(result.stdout), detail, `${args.join(' ')}: more columns only with --detail: ${result.stdout}`);
          }
        }
      }
    }
  });

  it('backup-fetch DEST LATEST takes WAL-G flags that change nothing, and refuses partial restores', async () => {
    const root = makePostgresOwnedDirectory('walship-forms-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    for (const [flag, value] of [['--mask', 'base/*'], ['--restore-only', 'postgres'], ['--restore-spec', '/tmp/spec.json'], ['--target-user-data', '{"by":"wal-g script"}']] as const) {
      const refused = await walship(['backup-fetch', join(root, 'refused'), 'LATEST', flag, value]);
      assert.equal(refused.code, 1, `${flag}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`WAL-G's ${flag} .* is not supported yet`));
      assert.ok(!existsSync(join(root, 'refused')), `${flag}: nothing restored`);
    }
    const fetched = await walship(['backup-fetch', join(root, 'data'), 'LATEST', '--reverse-unpack', '--skip-redundant-tars', '--target-storage', 'default']);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.ok(existsSync(join(root, 'data', 'global', 'pg_control')));
  });
});

describe("WAL-G's optional flags of wal-push and wal-fetch", () => {
  const root = mkdtempSync(join(tmpdir(), 'walship-forms-wal-'));
  after(() => removeAfterHelpers(root));
  const archive = join(root, 'archive');
  const dataDir = join(root, 'data');
  const SEGMENT = '000000010000000000000003';
  mkdirSync(archive);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dataDir, 'pg_wal', SEGMENT), asWalSegment(Buffer.alloc(1 << 20, 3)));
  const walship = (args: string[]) =>
    run(walshipBinary, args, { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false' } });

  it('accepts --target-storage default and --turbo, and refuses any other storage with the command\'s failure code', async () => {
    for (const args of [['wal-push', '--target-storage', 'default', `pg_wal/${SEGMENT}`], ['--turbo', 'wal-push', `pg_wal/${SEGMENT}`, '--turbo']]) {
      const result = await walship(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr, '');
    }
    const fetched = await walship(['wal-fetch', '--target-storage', 'default', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(readFileSync(join(dataDir, 'pg_wal', SEGMENT))));

    const pushRefused = await walship(['wal-push', '--target-storage', 'failover', `pg_wal/${SEGMENT}`]);
    assert.equal(pushRefused.code, 1, pushRefused.stderr);
    assert.match(pushRefused.stderr, /WAL-G's --target-storage failover is not supported yet: walship has one storage and no failover storages; drop it or pass --target-storage default/);
    const fetchRefused = await walship(['wal-fetch', SEGMENT, 'pg_wal/OTHER', '--target-storage', 'failover']);
    assert.equal(fetchRefused.code, 255, 'in recovery an error must stop the server, not read as "not found"');
    assert.ok(!existsSync(join(dataDir, 'pg_wal', 'OTHER')));
  });

  it('keeps -v for --version before the command', async () => {
    const result = await walship(['-v']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^walship \d+\.\d+\.\d+/);
  });
});
