// The README's PostgreSQL role recipe on a real PostgreSQL 15: a role with
// exactly the documented attributes and grants, exactly the documented
// pg_hba.conf lines and a password file, and backup-push run as the
// postgres OS user with a config file. Each documented piece, taken away,
// fails with one line that says what to do (or, for pg_read_all_settings,
// leaves the data directory unrecorded).
import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';

const ROLE = 'walship_backup';
const PASSWORD = 'role-recipe-9c1e';

/** The README's lines, for a server reached through its Unix socket. */
const DOCUMENTED_HBA_LINES = [
  `local   replication   ${ROLE}   scram-sha-256`,
  `local   postgres      ${ROLE}   scram-sha-256`,
];
/** The test harness's own access, as the postgres superuser. */
const HARNESS_HBA_LINE = 'local   all   postgres   trust';

describe('the documented backup role', () => {
  let archive: string;
  let primary: PostgresCluster;
  let configFile: string;
  let passwordFile: string;

  const writeHba = (lines: string[]) => primary.writeFile('pg_hba.conf', `${[HARNESS_HBA_LINE, ...lines].join('\n')}\n`);
  const reload = () => primary.sql('SELECT pg_reload_conf()');

  /** backup-push as the postgres OS user, like cron; only PATH comes from the environment, the rest from the config file. */
  const backupPush = () =>
    run(walshipBinary, ['--config', configFile, 'backup-push', '--json'], { asPostgres: true, env: { PATH: `${postgresBin}:${process.env.PATH}` } });

  /** backup-push fails with exit 1 and exactly one error line, matching `expected`. */
  async function assertFailsWithOneLine(expected: RegExp): Promise<void> {
    const pushed = await backupPush();
    assert.equal(pushed.code, 1, pushed.stderr);
    const errors = pushed.stderr.split('\n').filter((line) => line.includes('ERROR'));
    assert.equal(errors.length, 1, pushed.stderr);
    assert.match(errors[0]!, expected);
  }

  /** Runs `check` with only the documented pg_hba.conf lines that `keep` accepts, then puts them all back. */
  async function withHbaLines(keep: (line: string) => boolean, check: () => Promise<void>): Promise<void> {
    writeHba(DOCUMENTED_HBA_LINES.filter(keep));
    await reload();
    try {
      await check();
    } finally {
      writeHba(DOCUMENTED_HBA_LINES);
      await reload();
    }
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-role-archive-');
    primary = await PostgresCluster.init({
      env: { WALG_FILE_PREFIX: archive },
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` },
    });
    await primary.start();
    await primary.sql(`CREATE ROLE ${ROLE} WITH LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
    await primary.sql(`GRANT pg_read_all_settings TO ${ROLE}`);
    writeHba(DOCUMENTED_HBA_LINES);
    await reload();

    passwordFile = join(primary.root, 'walship.pgpass');
    writeFileSync(passwordFile, `*:${primary.port}:*:${ROLE}:${PASSWORD}\n`, { mode: 0o600 });
    giveToPostgres(passwordFile);
    configFile = join(primary.root, 'walship.yaml');
    writeFileSync(
      configFile,
      [`WALG_FILE_PREFIX: ${archive}`, `PGHOST: ${primary.root}`, `PGPORT: ${primary.port}`, `PGUSER: ${ROLE}`, 'PGDATABASE: postgres', `PGPASSFILE: ${passwordFile}`, ''].join('\n'),
      { mode: 0o600 },
    );
    giveToPostgres(configFile);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it('backs up with exactly the documented grants, and records the data directory', async () => {
    const pushed = await backupPush();
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal((JSON.parse(pushed.stdout) as { data_dir: string }).data_dir, primary.dataDir);
  });

  it('without REPLICATION, fails with one line saying what to grant', async () => {
    await primary.sql(`ALTER ROLE ${ROLE} NOREPLICATION`);
    try {
      await assertFailsWithOneLine(/ALTER ROLE <user> REPLICATION/);
    } finally {
      await primary.sql(`ALTER ROLE ${ROLE} REPLICATION`);
    }
  });

  it('without the pg_hba.conf replication line, fails with one line naming pg_hba.conf', async () => {
    await withHbaLines(
      (line) => !line.includes('replication'),
      () => assertFailsWithOneLine(/no pg_hba\.conf entry for replication connection .*a "replication" line/),
    );
  });

  it('without the pg_hba.conf line for its database, fails with one line naming pg_hba.conf', async () => {
    await withHbaLines(
      (line) => line.includes('replication'),
      () => assertFailsWithOneLine(/no pg_hba\.conf entry for host .* database "postgres".*; allow this user to connect to PGDATABASE in pg_hba\.conf/),
    );
  });

  it('with a password file others can read, fails with one line (libpq ignores the file)', async () => {
    chmodSync(passwordFile, 0o640);
    try {
      await assertFailsWithOneLine(/has group or world access; permissions should be u=rw \(0600\) or less/);
    } finally {
      chmodSync(passwordFile, 0o600);
    }
  });

  it('without pg_read_all_settings, still backs up but cannot record the data directory', async () => {
    await primary.sql(`REVOKE pg_read_all_settings FROM ${ROLE}`);
    try {
      const pushed = await backupPush();
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.equal((JSON.parse(pushed.stdout) as { data_dir: string }).data_dir, '');
    } finally {
      await primary.sql(`GRANT pg_read_all_settings TO ${ROLE}`);
    }
  });
});
