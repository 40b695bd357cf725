// What a server restored by backup-fetch does to the source's archive, and
// where the storage credentials it is handed live, on a real PostgreSQL 15:
// a side copy restored to a recovery target comes up with archiving off and,
// once promoted, leaves the archive exactly as it was; a replacement or a
// standby keeps archiving; the credentials are never in the data directory,
// nor in a pg_basebackup of the restored server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { check, giveToPostgres, isRoot, pidInFile, run } from '../support/processes.ts';
import { startArchivingPrimary } from '../support/scenarios.ts';
import { PidFile } from '../../src/wal/background.ts';
import { helperPidFiles } from '../../src/wal/spool.ts';

/** A secret-looking setting that backup-fetch carries into the recovery settings, unlike anything else in a cluster. */
const SECRET = `walship-test-secret-${randomBytes(12).toString('hex')}`;

/** The files under `directory` whose bytes contain SECRET. */
function filesHoldingSecret(directory: string): string[] {
  return filesUnder(directory).filter((path) => existsSync(path) && readFileSync(path).includes(SECRET));
}

describe('what a restored server archives, and where its credentials live', () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let targetTime: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  /** Runs walship as the postgres OS user, as a DBA should. */
  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...extraEnv } });

  /** Every key under the prefix, walship's metadata tree included. */
  const archiveKeys = () => filesUnder(archive).sort();

  const countRows = (cluster: PostgresCluster) => cluster.sql('SELECT count(*) FROM marker');

  /**
   * backup-fetch LATEST into a new directory, then starts the restored server.
   * Its environment has no storage settings unless `serverEnv` gives them, so
   * only a server that must not archive is ever able to.
   */
  async function restore(fetchArgs: string[], serverEnv: Record<string, string> = {}) {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const fetched = await walship(['backup-fetch', dataDir, 'LATEST', ...fetchArgs], { AWS_SECRET_ACCESS_KEY: SECRET });
    assert.equal(fetched.code, 0, fetched.stderr);
    const server = await PostgresCluster.adopt(dataDir, root, { env: serverEnv });
    cleanups.push(() => server.destroy());
    await server.start();
    return { server, stderr: fetched.stderr };
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await startArchivingPrimary(env);
    await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)');
    await primary.sql("INSERT INTO marker (phase) SELECT 'before-backup' FROM generate_series(1, 1000)");
    const pushed = await walship(['backup-push'], libpq(primary));
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.sql("INSERT INTO marker (phase) SELECT 'before-target' FROM generate_series(1, 1000)");
    targetTime = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await primary.sql("INSERT INTO marker (phase) SELECT 'after-target' FROM generate_series(1, 1000)");
    // A few more segments for recovery to replay, so that restores prefetch some of them.
    await primary.sql('CREATE TABLE filler (payload text)');
    for (let i = 0; i < 4; i++) {
      await primary.sql("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)");
      await primary.switchAndWaitArchived();
    }
    // From here on only a restored server could write to the archive.
    await primary.stop();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  describe('a side copy restored to a recovery target, with the storage settings in its environment', () => {
    let sideCopy: PostgresCluster;
    let stderr: string;
    let keysBefore: string[];

    before(async () => {
      keysBefore = archiveKeys();
      // Given the archive, its restored archive_command (walship wal-push) would archive the new timeline there.
      ({ server: sideCopy, stderr } = await restore(['--recovery-target-time', targetTime, '--recovery-target-action', 'promote'], { WALG_FILE_PREFIX: archive }));
      await sideCopy.waitPromoted();
    });

    it('comes up with archiving off, says so, and once promoted leaves every key of the archive as it was', async () => {
      assert.match(stderr, /^backup-fetch: archiving is off \(a recovery target: usually a side copy\): archive_mode = 'off' in \S+\/postgresql\.auto\.conf/m);
      assert.match(stderr, /^backup-fetch: to archive from it, set archive_mode = 'on' in that file before starting it \(or restore with --archive\)/m);
      assert.equal(await sideCopy.sql('SHOW archive_mode'), 'off');
      assert.equal(await countRows(sideCopy), '2000');
      assert.equal(await sideCopy.sql('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), '00000002');
      // Complete a segment of timeline 2: an archiver would take it, and 00000002.history, at once.
      await sideCopy.sql("INSERT INTO marker (phase) SELECT 'side-copy' FROM generate_series(1, 1000)");
      await sideCopy.sql('SELECT pg_switch_wal()');
      await sideCopy.sql('CHECKPOINT');
      await sleep(2000);
      assert.deepEqual(archiveKeys(), keysBefore);
      assert.ok(!keysBefore.some((key) => basename(key).startsWith('00000002')), 'nothing of timeline 2 was ever archived');
    });

    it('holds the credentials outside its data directory: no file in it, and no pg_basebackup of it, contains them', async () => {
      const configFile = join(sideCopy.root, '.walship-data', 'walship-recovery.json');
      assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).AWS_SECRET_ACCESS_KEY, SECRET, 'the secret was carried, so its absence below means something');
      assert.equal(statSync(configFile).mode & 0o777, 0o600);
      assert.match(stderr, new RegExp(`storage settings in ${configFile.replaceAll('.', '\\.')} \\(mode 0600, outside the data directory\\)`));
      assert.ok(readFileSync(join(sideCopy.dataDir, 'postgresql.auto.conf'), 'utf8').includes(`; exec ${walshipBinary} --config ${configFile} wal-fetch %f %p'`));
      assert.ok(!stderr.includes(SECRET));

      assert.deepEqual(filesHoldingSecret(sideCopy.dataDir), []);
      const tar = await sideCopy.client('pg_basebackup', ['-D', '-', '-Ft', '-X', 'fetch']);
      assert.ok(tar.includes('postgresql.auto.conf') && tar.length > 1 << 20, 'pg_basebackup streamed the data directory');
      assert.ok(!tar.includes(SECRET), 'the pg_basebackup of the restored server holds the secret');
    });
  });

  it('keeps archiving with --archive, even with a recovery target', async () => {
    const { server, stderr } = await restore(['--recovery-target-time', targetTime, '--archive']);
    assert.match(stderr, /^backup-fetch: archiving is kept \(--archive\): once promoted, this server archives its new timeline/m);
    assert.equal(await server.sql('SHOW archive_mode'), 'on');
  });

  it('keeps archiving for a restore to the end of the archive, a replacement', async () => {
    const { server, stderr } = await restore([]);
    assert.match(stderr, /^backup-fetch: archiving is kept \(no recovery target: usually a replacement\)/m);
    assert.match(stderr, /^backup-fetch: to keep it out of that archive, add archive_mode = 'off' to \S+\/postgresql\.auto\.conf before starting it \(or restore with --no-archive\)/m);
    assert.equal(await server.sql('SHOW archive_mode'), 'on');
  });

  it('keeps archiving for a standby', async () => {
    const { server, stderr } = await restore(['--standby']);
    assert.match(stderr, /^backup-fetch: archiving is kept \(--standby\)/m);
    assert.equal(await server.sql('SELECT pg_is_in_recovery()'), 't');
    assert.equal(await server.sql('SHOW archive_mode'), 'on');
  });

  it('turns archiving off with --no-archive, even without a recovery target', async () => {
    const { server, stderr } = await restore(['--no-archive']);
    assert.match(stderr, /^backup-fetch: archiving is off \(--no-archive\)/m);
    await server.waitPromoted();
    assert.equal(await server.sql('SHOW archive_mode'), 'off');
    assert.equal(await countRows(server), '3000');
  });

  it('refuses --archive with --no-archive, and either with --no-recovery-config, in one line and before restoring anything', async () => {
    const scratch = makePostgresOwnedDirectory('walship-refused-');
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
    const destination = join(scratch, 'data');
    const both = await walship(['backup-fetch', destination, 'LATEST', '--archive', '--no-archive']);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /^walship backup-fetch: ERROR: --archive and --no-archive contradict each other: give one/);
    assert.equal(both.stderr.trim().split('\n').length, 1, both.stderr);
    const manual = await walship(['backup-fetch', destination, 'LATEST', '--no-recovery-config', '--no-archive']);
    assert.equal(manual.code, 1);
    assert.match(manual.stderr, /--no-recovery-config writes no recovery settings: drop the recovery target, --standby, --archive and --no-archive options/);
    assert.deepEqual(readdirSync(scratch), []);
  });

  it('keeps the recovery settings in the state directory when the parent of the data directory is not writable, and recovers with prefetching', { skip: !isRoot && 'needs root' }, async () => {
    // /srv/pg/restored with /srv/pg owned by root: a root-owned parent, mode 0755, and a postgres-owned data directory in it.
    const parent = mkdtempSync(join(tmpdir(), 'walship-root-owned-'));
    chmodSync(parent, 0o755);
    cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
    const dataDir = join(parent, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    giveToPostgres(dataDir);
    // The postgres user's state directory, private to this test.
    const home = makePostgresOwnedDirectory('walship-state-');
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const state = join(home, 'state');

    // DEVEL, carried into the recovery settings, makes each wal-fetch say where it found its segment.
    const fetched = await walship(['backup-fetch', dataDir, 'LATEST', '--no-archive'], { XDG_STATE_HOME: state, AWS_SECRET_ACCESS_KEY: SECRET, WALG_LOG_LEVEL: 'DEVEL' });
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.ok(!existsSync(join(parent, '.walship-data')));
    const spools = readdirSync(join(state, 'walship'));
    assert.equal(spools.length, 1);
    assert.match(spools[0]!, /^data-[0-9a-f]{8}$/);
    const spool = join(state, 'walship', spools[0]!);
    const configFile = join(spool, 'walship-recovery.json');
    assert.equal(statSync(configFile).mode & 0o777, 0o600);
    assert.equal(statSync(spool).mode & 0o777, 0o700);
    assert.ok(fetched.stderr.includes(`storage settings in ${configFile} (mode 0600, outside the data directory)`), fetched.stderr);

    const serverRoot = makePostgresOwnedDirectory('walship-server-');
    // The server's environment lacks XDG_STATE_HOME: the recovery settings name the spool.
    const server = await PostgresCluster.adopt(dataDir, serverRoot);
    cleanups.push(async () => {
      await server.destroy();
      for (const pidFile of helperPidFiles(spool)) {
        const prefetcher = pidInFile(pidFile);
        if (prefetcher) process.kill(prefetcher, 'SIGKILL');
      }
    });
    await server.start();
    await server.waitPromoted();
    assert.equal(await countRows(server), '3000');
    // wal-fetch prefetched into the same fallback spool, and said so once.
    const serverLog = readFileSync(server.logFile, 'utf8');
    const announced = serverLog.split('\n').filter((line) => line.includes("prefetching this recovery's WAL into"));
    assert.equal(announced.length, 1, serverLog);
    assert.ok(announced[0]!.includes(`into ${join(spool, 'prefetch')}/`), announced[0]);
    // The restore_command's shell fast path hands over what the prefetcher put in that area. Shown after
    // replay, where no race decides whether the prefetcher is ahead of recovery: in the same server run
    // (postmaster.pid), a wal-fetch of one archived segment starts a prefetcher, the next segment appears
    // in the area, and the restore_command backup-fetch wrote takes it without starting walship.
    const area = /prefetching this recovery's WAL into (\S+)/.exec(announced[0]!)![1]!;
    const [first, next] = archiveKeys()
      .map((key) => /^(00000001[0-9A-F]{16})(\.\w+)?$/.exec(basename(key))?.[1])
      .filter((name) => name !== undefined)
      .slice(-2);
    // The recovery's prefetcher follows recovery forward only, and recovery is over: the wal-fetch below starts another.
    for (const pidFile of helperPidFiles(spool)) {
      const lock = new PidFile(pidFile);
      const pid = await lock.holder();
      if (pid) process.kill(pid, 'SIGKILL');
      while (await lock.holder()) await sleep(20);
    }
    const asServer = (command: string, args: string[], cwd = dataDir) => run(command, args, { asPostgres: true, cwd, env: { PATH: process.env.PATH } });
    const fetchedFirst = await asServer(walshipBinary, ['--config', configFile, 'wal-fetch', first!, join(serverRoot, 'first')]);
    assert.equal(fetchedFirst.code, 0, fetchedFirst.stderr);
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(area, next!))) {
      assert.ok(Date.now() < deadline, `${next} never appeared in ${area}`);
      await sleep(20);
    }
    const restoreCommand = (await server.sql('SHOW restore_command')).replaceAll('%f', next!).replaceAll('%p', join(serverRoot, 'next'));
    const handedOver = await asServer('/bin/sh', ['-c', restoreCommand]);
    assert.equal(handedOver.code, 0, handedOver.stderr);
    assert.doesNotMatch(handedOver.stderr, /walship wal-fetch: DEBUG: walship /, 'a hit starts no walship');
    assert.ok(!existsSync(join(area, next!)), 'taken out of the area');
    // Where no server runs (no postmaster.pid), wal-fetch downloads without prefetching: the archived content.
    const downloaded = await asServer(walshipBinary, ['--config', configFile, 'wal-fetch', next!, join(serverRoot, 'downloaded')], serverRoot);
    assert.equal(downloaded.code, 0, downloaded.stderr);
    assert.ok(readFileSync(join(serverRoot, 'next')).equals(readFileSync(join(serverRoot, 'downloaded'))), 'the archived segment');
    assert.deepEqual(filesHoldingSecret(dataDir), []);
  });

  it('passes over a spool it cannot write, such as one a run as root left, for the state directory', { skip: !isRoot && 'needs root' }, async () => {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, '.walship-data'), { mode: 0o700 }); // owned by root, as a root backup-fetch leaves it
    const state = join(root, 'state');
    const fetched = await walship(['backup-fetch', join(root, 'data'), 'LATEST'], { XDG_STATE_HOME: state });
    assert.equal(fetched.code, 0, fetched.stderr);
    const [spool] = readdirSync(join(state, 'walship'));
    assert.ok(existsSync(join(state, 'walship', spool!, 'walship-recovery.json')));
  });

  it('run as root, says exactly what to chown for the server to recover, and it then does', { skip: !isRoot && 'needs root' }, async () => {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const fetched = await run(walshipBinary, ['backup-fetch', dataDir, 'LATEST', '--no-archive'], { env: { ...process.env, ...env } });
    assert.equal(fetched.code, 0, fetched.stderr);
    const chown = /the restored files and the recovery settings belong to root, and PostgreSQL will not run as root: (chown -R postgres: .+), or run backup-fetch as the PostgreSQL OS user/.exec(fetched.stderr);
    assert.ok(chown, fetched.stderr);
    assert.equal(chown[1], `chown -R postgres: ${dataDir} ${join(root, '.walship-data')}`);
    await check('sh', ['-c', chown[1]!]);

    const server = await PostgresCluster.adopt(dataDir, root);
    cleanups.push(() => server.destroy());
    await server.start();
    await server.waitPromoted();
    assert.equal(await countRows(server), '3000');
  });
});
