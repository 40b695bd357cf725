// Base backups and point-in-time restore on a real PostgreSQL 15: backup-push
// while walship archives the WAL, then backup-fetch to a time, to the end of
// the archive and to the end of the backup, each restored server started
// without any walship settings in its environment.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { libpq } from '../support/libpq.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

const SECRET = 'not-a-real-secret-7f3a';

describe('base backups and point-in-time restore on file storage', () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let backupName: string;
  let targetTime: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  /** Runs walship as the postgres OS user, like cron or the server would. */
  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });

  const countPhase = (cluster: PostgresCluster, phase: string) => cluster.sql(`SELECT count(*) FROM marker WHERE phase = '${phase}'`);

  /** backup-fetch into a new directory, then start the restored server with an empty walship environment. */
  async function restore(fetchArgs: string[]): Promise<PostgresCluster> {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const fetched = await walship(['backup-fetch', dataDir, ...fetchArgs]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stderr, /verified with pg_verifybackup/);
    // archive_mode off: a restored copy must not push a new timeline into the shared archive.
    const restored = await PostgresCluster.adopt(dataDir, root, { settings: { archive_mode: 'off' } });
    cleanups.push(() => restored.destroy());
    await restored.start();
    await restored.waitPromoted();
    return restored;
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    env = { WALG_FILE_PREFIX: archive, WALG_TAR_SIZE_THRESHOLD: String(8 << 20), PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({
      env,
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` },
    });
    await primary.start();
    await primary.pgbench(['-i', '-s', '2', '-q']);
    await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)');
    await primary.sql("INSERT INTO marker (phase) SELECT 'before-backup' FROM generate_series(1, 1000)");

    const pushed = await walship(['backup-push', '--json', '--add-user-data', '{"ticket":"DBA-1"}']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const description = JSON.parse(pushed.stdout) as { backup_name: string; parts: number; user_data: unknown };
    backupName = description.backup_name;
    assert.ok(description.parts >= 2, `expected several parts with an 8 MiB threshold, got ${description.parts}`);
    assert.deepEqual(description.user_data, { ticket: 'DBA-1' });
    assert.match(pushed.stderr, /backup-push: base_[0-9A-F]{24}: .* compressed.* in .*\/s/);

    await primary.sql("INSERT INTO marker (phase) SELECT 'after-backup' FROM generate_series(1, 1000)");
    targetTime = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await primary.sql("INSERT INTO marker (phase) SELECT 'after-target' FROM generate_series(1, 1000)");
    await primary.switchAndWaitArchived();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it('restores to a point in time: exactly the changes before the target', async () => {
    const restored = await restore(['LATEST', '--recovery-target-time', targetTime, '--recovery-target-action', 'promote']);
    assert.equal(await countPhase(restored, 'before-backup'), '1000');
    assert.equal(await countPhase(restored, 'after-backup'), '1000');
    assert.equal(await countPhase(restored, 'after-target'), '0');
    assert.match(readFileSync(restored.logFile, 'utf8'), /recovery stopping before commit/);
  });

  it('restores LATEST to the end of the archive', async () => {
    const restored = await restore(['LATEST']);
    for (const phase of ['before-backup', 'after-backup', 'after-target']) assert.equal(await countPhase(restored, phase), '1000', phase);
    assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '200000');
  });

  it('restores with --recovery-target-immediate to the state at the end of the backup', async () => {
    const restored = await restore([backupName, '--recovery-target-immediate', '--recovery-target-action', 'promote']);
    assert.equal(await countPhase(restored, 'before-backup'), '1000');
    assert.equal(await countPhase(restored, 'after-backup'), '0');
    assert.match(readFileSync(restored.logFile, 'utf8'), /recovery stopping after reaching consistency/);
  });

  it('keeps the storage settings owner-only in the spool next to the data directory, never in postgresql.auto.conf', async () => {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const fetched = await walship(['backup-fetch', dataDir, backupName], { AWS_SECRET_ACCESS_KEY: SECRET });
    assert.equal(fetched.code, 0, fetched.stderr);
    const configFile = join(root, '.walship-data', 'walship-recovery.json');
    assert.equal(statSync(configFile).mode & 0o777, 0o600);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).AWS_SECRET_ACCESS_KEY, SECRET);
    const autoConf = readFileSync(join(dataDir, 'postgresql.auto.conf'), 'utf8');
    assert.ok(!autoConf.includes(SECRET));
    // The shell fast path over the prefetch area, then wal-fetch with the settings in the spool.
    assert.match(autoConf, /^restore_command = 'd=\S+\/\.walship-data\/prefetch\/[0-9a-f]{16}\/; /m);
    assert.ok(autoConf.includes(`; exec ${walshipBinary} --config ${configFile} wal-fetch %f %p'`), autoConf);
    assert.equal(statSync(join(dataDir, 'recovery.signal')).size, 0);
    assert.ok(!fetched.stderr.includes(SECRET) && !fetched.stdout.includes(SECRET));

    // A non-empty destination is refused unless --force; --no-recovery-config prints the next steps.
    const refused = await walship(['backup-fetch', dataDir, backupName]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is not empty: restore into an empty or new directory, or pass --force/);
    const forced = await walship(['backup-fetch', dataDir, backupName, '--force', '--no-recovery-config', '--standby']);
    assert.equal(forced.code, 1);
    assert.match(forced.stderr, /--no-recovery-config writes no recovery settings/);
    const plain = await walship(['backup-fetch', dataDir, backupName, '--force', '--no-recovery-config']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /no recovery settings were written/);
    assert.match(plain.stdout, /keep it outside the data directory/);
    // The restore_command to write by hand has the fast path over this data directory's prefetch areas.
    assert.ok(plain.stdout.includes(`restore_command = 'd=${join(root, '.walship-data', 'prefetch')}/`), plain.stdout);
    assert.match(plain.stdout, /; exec \S+ --config \/path\/to\/walship\.json wal-fetch %f %p'$/m);
    assert.match(plain.stdout, /unless this server replaces the source, also add archive_mode = 'off'/);
    assert.doesNotMatch(readFileSync(join(dataDir, 'postgresql.auto.conf'), 'utf8'), /restore_command/);
  });

  it('lists backups newest last, and marks them permanent and back', async () => {
    await primary.sql("INSERT INTO marker (phase) SELECT 'second-backup' FROM generate_series(1, 10)");
    const second = await walship(['backup-push', '--permanent']);
    assert.equal(second.code, 0, second.stderr);

    const plain = await walship(['backup-list']);
    assert.equal(plain.code, 0, plain.stderr);
    const lines = plain.stdout.trim().split('\n');
    assert.match(lines[0]!, /^name\s+modified\s+wal_segment_backup_start$/);
    assert.equal(lines.length, 3);
    assert.ok(lines[1]!.startsWith(backupName));

    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string; is_permanent: boolean; system_identifier: string }[];
    assert.equal(listed[0]!.backup_name, backupName);
    assert.deepEqual(listed.map((backup) => backup.is_permanent), [false, true]);
    assert.equal(listed[0]!.system_identifier, await primary.sql('SELECT system_identifier FROM pg_control_system()'));
    assert.match((await walship(['backup-list', '--detail'])).stdout, /start_lsn\s+finish_lsn/);
    assert.match((await walship(['backup-list', '--pretty'])).stdout, /^\+-+\+/);

    assert.equal((await walship(['backup-mark', backupName])).code, 0);
    assert.equal((await walship(['backup-mark', '--impermanent', listed[1]!.backup_name])).code, 0);
    const marked = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { is_permanent: boolean }[];
    assert.deepEqual(marked.map((backup) => backup.is_permanent), [true, false]);

    const missing = await walship(['backup-mark', 'base_0000000100000000000000FF']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /backup base_0000000100000000000000FF is not in file:\/\/.* backup-list shows the complete backups/);
  });

  it('refuses a recovery target before the end of the chosen backup', async () => {
    const early = await walship(['backup-fetch', join(archive, 'never'), backupName, '--recovery-target-time', '2000-01-01 00:00:00+00']);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /finished at .* after the recovery target time 2000-01-01 00:00:00\+00:00/);
    const noTarget = await walship(['backup-fetch', join(archive, 'never'), 'LATEST', '--recovery-target-lsn', '0/1']);
    assert.match(noTarget.stderr, /no backup finished before the recovery target LSN 0\/1/);
  });
});
