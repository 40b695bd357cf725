// The README's recipes, run as written on a real PostgreSQL 15: the crontab
// lines for backups, for backups with retention, for the nightly verification,
// for the weekly drill and for the nightly copy, as cron runs them; restoring the newest state
// after the data files broke; and bringing back rows deleted by mistake and a
// dropped table from a side copy restored to a point in time. Each command
// comes from the README's marked code blocks; the test substitutes only the
// machine's paths (and a port and a time) with its own, and plays the service
// manager's part (systemctl) with its own cluster.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, projectRoot, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { check, freePort, giveToPostgres, isRoot, pidInFile, run } from '../support/processes.ts';
import { startArchivingPrimary } from '../support/scenarios.ts';
import { asWalSegment } from '../support/wal.ts';

const README = readFileSync(join(projectRoot, 'README.md'), 'utf8');
const OS_USER = isRoot ? 'postgres' : userInfo().username;

/** The code block after `<!-- recipe: NAME ... -->` in the README, without its indentation. */
function recipe(name: string): string {
  const marker = README.indexOf(`<!-- recipe: ${name}`);
  assert.ok(marker >= 0, `README.md has no block marked "recipe: ${name}"`);
  const block = /^([ \t]*)```[a-z]*\n([\s\S]*?)^\1```$/m.exec(README.slice(marker));
  assert.ok(block, `no code block follows the marker "recipe: ${name}"`);
  const indent = block[1]!;
  return block[2]!
    .split('\n')
    .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line))
    .join('\n');
}

/**
 * Replaces the README's own values (paths, a port, a time) with the test's,
 * and checks that none of the machine's paths is left, so the test neither
 * drifts from the README nor touches the machine.
 */
function substitute(text: string, replacements: [literal: string | RegExp, value: string][]): string {
  for (const [literal, value] of replacements) text = text.replaceAll(literal, () => value);
  assert.doesNotMatch(text, /\/etc\/|\/var\/|\/usr\/local\//, `a path of the machine is left in:\n${text}`);
  return text;
}

/** The command of the README's one-line crontab recipe `name`, as cron runs it, with the machine's paths replaced. */
function cronCommand(name: string, replacements: [literal: string, value: string][]): string {
  const line = recipe(name).trim();
  assert.equal(line.split('\n').length, 1, 'one crontab line');
  const fields = line.split(/\s+/);
  assert.match(fields.slice(0, 5).join(' '), /^[\d*,/-]+( [\d*,/-]+){4}$/, 'five time fields, then the command (a user crontab has no user field)');
  const command = line.replace(/^(\S+\s+){5}/, '');
  // cron turns an unescaped % into a newline and feeds what follows to stdin.
  assert.doesNotMatch(command, /(^|[^\\])%/, 'an unescaped % would cut the command short');
  return substitute(command.replaceAll('\\%', '%'), replacements);
}

/** Runs a shell script as the PostgreSQL OS user with exactly `env`, as cron or a login shell would. */
function runAsPostgresUser(script: string, env: Record<string, string>, cwd: string) {
  const environment = Object.entries({ LOGNAME: OS_USER, SHELL: '/bin/sh', ...env }).map(([name, value]) => `${name}=${value}`);
  return run('env', ['-i', ...environment, '/bin/sh', '-c', script], { asPostgres: true, cwd });
}

/** A walship config file owned by the PostgreSQL OS user, mode 0600, as the README's /etc/walship.yaml. */
function writeConfig(path: string, settings: Record<string, string>): void {
  writeFileSync(path, Object.entries(settings).map(([name, value]) => `${name}: ${value}\n`).join(''), { mode: 0o600 });
  giveToPostgres(path);
}

/** A cluster that archives as the README's production does: walship wal-push with the config file. */
function initProductionCluster(config: string): Promise<PostgresCluster> {
  return PostgresCluster.init({ settings: { archive_mode: 'on', archive_command: `${walshipBinary} --config ${config} wal-push %p` } });
}

async function backupPush(config: string, cluster: PostgresCluster): Promise<void> {
  const env = { ...process.env, ...libpq(cluster), PATH: `${postgresBin}:${process.env.PATH}` };
  const pushed = await run(walshipBinary, ['--config', config, 'backup-push'], { asPostgres: true, env });
  assert.equal(pushed.code, 0, pushed.stderr);
}

async function backupCount(env: Record<string, string>): Promise<number> {
  const listed = await run(walshipBinary, ['backup-list', '--json'], { asPostgres: true, env: { ...process.env, ...env } });
  assert.equal(listed.code, 0, listed.stderr);
  return (JSON.parse(listed.stdout) as unknown[]).length;
}

describe("the README's crontab line, run as cron runs it", () => {
  let archive: string;
  let home: string;
  let config: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  /** Runs the line's command as cron does: /bin/sh, the crontab owner's HOME and LOGNAME, PATH=/usr/bin:/bin, nothing else. */
  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);
  const countBackups = () => backupCount({ WALG_FILE_PREFIX: archive });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    config = join(home, 'walship.yaml');
    log = join(home, 'walship-backup-push.log');
    primary = await startArchivingPrimary({ WALG_FILE_PREFIX: archive });
    writeConfig(config, { WALG_FILE_PREFIX: archive, ...libpq(primary) });

    command = cronCommand('crontab', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/log/postgresql/walship-backup-push.log', log],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('is the line backup-push --help shows', async () => {
    const help = await check(walshipBinary, ['backup-push', '--help']);
    const line = recipe('crontab').trim();
    assert.ok(help.split('\n').some((shown) => shown.trim() === line), `backup-push --help does not show the README's line:\n${help}`);
  });

  it('takes a backup and prints nothing, so cron mails nothing', async () => {
    const cron = await runAsCron();
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    assert.equal(await countBackups(), 1);
    assert.match(readFileSync(log, 'utf8'), /backup-push: base_[0-9A-F]{24}: /);
  });

  it('takes no backup while an earlier run holds the lock, and prints one line that says so', async () => {
    let holder: ChildProcess | undefined;
    try {
      holder = spawn('flock', [log, 'sleep', '600'], { detached: true, stdio: 'ignore' });
      while ((await run('flock', ['-n', log, 'true'])).code === 0) await sleep(20);
      const cron = await runAsCron();
      assert.equal(cron.code, 0);
      assert.equal(cron.stdout, `walship backup-push failed with exit 75 (75: an earlier run still holds the lock); see ${log}\n`);
      assert.equal(cron.stderr, '');
      assert.equal(await countBackups(), 1);
    } finally {
      if (holder?.pid) process.kill(-holder.pid, 'SIGKILL');
    }
  });

  it('prints one line for cron to mail when the backup fails, and logs why', async () => {
    await primary.stop();
    const cron = await runAsCron();
    assert.equal(cron.stdout, `walship backup-push failed with exit 1 (75: an earlier run still holds the lock); see ${log}\n`);
    assert.equal(cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), /^walship backup-push: ERROR: .+$/m);
    assert.equal(await countBackups(), 1);
  });

  it("then the status line (status --help's) writes the textfile, CRITICAL for the failed attempt, and prints nothing for cron to mail", async () => {
    const line = recipe('crontab-status').trim();
    assert.ok((await check(walshipBinary, ['status', '--help'])).split('\n').some((shown) => shown.trim() === line), 'status --help shows the line');
    const textfile = join(home, 'walship.prom');
    const statusLog = join(home, 'walship-status.log');
    const status = cronCommand('crontab-status', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/lib/prometheus/node-exporter/walship.prom', textfile],
      ['/var/log/postgresql/walship-status.log', statusLog],
      ['/usr/lib/postgresql/15/bin', postgresBin],
    ]);
    const cron = await runAsPostgresUser(status, { HOME: home, PATH: '/usr/bin:/bin' }, home);
    assert.equal(cron.code, 0, cron.stdout + cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    const text = readFileSync(textfile, 'utf8');
    assert.match(text, /^walship_status 2$/m);
    assert.match(text, /^walship_backup_last_attempt_success 0$/m);
    assert.match(readFileSync(statusLog, 'utf8'), /^WALSHIP CRITICAL - last backup-push attempt failed/m);
  });
});

describe("the README's nightly crontab line with retention, run as cron runs it", () => {
  let archive: string;
  let home: string;
  let config: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);
  const countBackups = () => backupCount({ WALG_FILE_PREFIX: archive });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    config = join(home, 'walship.yaml');
    log = join(home, 'walship-nightly.log');
    primary = await startArchivingPrimary({ WALG_FILE_PREFIX: archive });
    // The README's rules keep 7 daily backups: two nights' backups in one test are one day, so the test keeps the newest 2.
    writeConfig(config, { WALG_FILE_PREFIX: archive, WALSHIP_RETAIN_LAST: '2', ...libpq(primary) });
    command = cronCommand('crontab-retention', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/log/postgresql/walship-nightly.log', log],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('is the line delete --help shows', async () => {
    const help = await check(walshipBinary, ['delete', '--help']);
    const line = recipe('crontab-retention').trim();
    assert.ok(help.split('\n').some((shown) => shown.trim() === line), `delete --help does not show the README's line:\n${help}`);
  });

  it('takes a backup, then deletes what the rules in the config file do not keep, and prints nothing', async () => {
    for (const expected of [1, 2, 2]) {
      const cron = await runAsCron();
      assert.equal(cron.code, 0, cron.stderr);
      assert.equal(cron.stdout + cron.stderr, '');
      assert.equal(await countBackups(), expected);
    }
    assert.match(readFileSync(log, 'utf8'), /^Deleted 1 backup, 1 backup folder and \d+ WAL files: /m);
  });

  it('deletes nothing when the backup fails, and prints one line for cron to mail', async () => {
    await primary.stop();
    const cron = await runAsCron();
    assert.equal(cron.stdout, `walship backup-push or delete failed with exit 1 (75: an earlier run still holds the lock); see ${log}\n`);
    assert.equal(await countBackups(), 2);
  });
});

describe("the README's weekly drill line, run as cron runs it", () => {
  let archive: string;
  let home: string;
  let checks: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);
  const writeChecks = (rows: number) => writeFileSync(checks, `SELECT count(*) = ${rows} FROM marker;\n`);

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    const config = join(home, 'walship.yaml');
    checks = join(home, 'drill-checks.sql');
    log = join(home, 'walship-drill.log');
    writeConfig(config, { WALG_FILE_PREFIX: archive });
    writeChecks(1000);
    giveToPostgres(checks);
    primary = await startArchivingPrimary({ WALG_FILE_PREFIX: archive });
    await primary.sql("CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 1000) g");
    await backupPush(config, primary);
    await primary.switchAndWaitArchived();

    command = cronCommand('crontab-drill', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/etc/walship/drill-checks.sql', checks],
      ['/var/log/postgresql/walship-drill.log', log],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('is the line drill --help shows', async () => {
    const help = await check(walshipBinary, ['drill', '--help']);
    const line = recipe('crontab-drill').trim();
    assert.ok(help.split('\n').some((shown) => shown.trim() === line), `drill --help does not show the README's line:\n${help}`);
  });

  it('passes and prints nothing, so cron mails nothing; the verdict is in the log', async () => {
    const cron = await runAsCron();
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), /^WALSHIP OK - drill of base_[0-9A-F]{24} passed 7 checks: RTO /m);
  });

  it('prints one line for cron to mail when a check fails, with its exit code, and logs the verdict', async () => {
    writeChecks(999);
    const cron = await runAsCron();
    assert.equal(cron.stdout, `walship drill failed with exit 2 (1 WARNING, 2 CRITICAL, 3 UNKNOWN, 75: an earlier run still holds the lock); see ${log}\n`);
    assert.equal(cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), /^WALSHIP CRITICAL - check-sql: .*drill-checks\.sql, line 1 returned "f", not true/m);
  });
});

describe("the README's nightly dump line, run as cron runs it", () => {
  let archive: string;
  let home: string;
  let config: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);
  const countDumps = async () => {
    const listed = await run(walshipBinary, ['dump-list', '--json'], { asPostgres: true, env: { ...process.env, WALG_FILE_PREFIX: archive } });
    assert.equal(listed.code, 0, listed.stderr);
    return (JSON.parse(listed.stdout) as unknown[]).length;
  };

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    config = join(home, 'walship.yaml');
    log = join(home, 'walship-dump-push.log');
    primary = await PostgresCluster.init();
    await primary.start();
    await primary.sql('CREATE DATABASE shop');
    writeConfig(config, { WALG_FILE_PREFIX: archive, ...libpq(primary) });
    const line = recipe('dump-crontab').trim();
    assert.equal(line.split('\n').length, 1, 'one crontab line');
    assert.doesNotMatch(line, /(^|[^\\])%/, 'an unescaped % would cut the command short');
    command = substitute(line.replace(/^(\S+\s+){5}/, ''), [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/log/postgresql/walship-dump-push.log', log],
      ['/usr/lib/postgresql/15/bin', postgresBin],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('is the line dump-push --help shows', async () => {
    const help = await check(walshipBinary, ['dump-push', '--help']);
    assert.ok(help.split('\n').some((shown) => shown.trim() === recipe('dump-crontab').trim()), `dump-push --help does not show the README's line:\n${help}`);
  });

  it('takes a dump set and prints nothing; when the server is down, prints one line for cron to mail and logs why', async () => {
    const cron = await runAsCron();
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    assert.equal(await countDumps(), 1);
    assert.match(readFileSync(log, 'utf8'), /dump-push: dump_\d{8}T\d{6}Z: 2 databases and the globals/);

    await primary.stop();
    const failed = await runAsCron();
    assert.equal(failed.stdout, `walship dump-push failed with exit 1 (75: an earlier run still holds the lock); see ${log}\n`);
    assert.match(readFileSync(log, 'utf8'), /^walship dump-push: ERROR: .+$/m);
    assert.equal(await countDumps(), 1);
  });
});

describe("the README's nightly copy line, run as cron runs it", () => {
  let home: string;
  let archive: string;
  let copy: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);

  before(async () => {
    home = makePostgresOwnedDirectory('walship-home-');
    archive = join(home, 'nas');
    copy = join(home, 's3');
    for (const directory of [archive, copy]) {
      mkdirSync(directory);
      giveToPostgres(directory);
    }
    const config = join(home, 'walship.yaml');
    const copyConfig = join(home, 'walship-s3.yaml');
    log = join(home, 'walship-copy.log');
    writeConfig(copyConfig, { WALG_FILE_PREFIX: copy });
    writeConfig(config, { WALG_FILE_PREFIX: archive, WALSHIP_COPIES: copyConfig });
    primary = await initProductionCluster(config);
    await primary.start();
    await backupPush(config, primary);
    await primary.switchAndWaitArchived();
    command = cronCommand('crontab-copy', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/log/postgresql/walship-copy.log', log],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(home, { recursive: true, force: true });
  });

  it('is the line copy --help shows', async () => {
    const help = await check(walshipBinary, ['copy', '--help']);
    assert.ok(help.split('\n').some((shown) => shown.trim() === recipe('crontab-copy').trim()), `copy --help does not show the README's line:\n${help}`);
  });

  it('copies the backup to the copy and prints nothing, so cron mails nothing', async () => {
    const cron = await runAsCron();
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    assert.equal(await backupCount({ WALG_FILE_PREFIX: copy }), 1);
    assert.match(readFileSync(log, 'utf8'), /copy file:\/\/.* -> file:\/\/.*: copied \d+ WAL files? .* and 1 backup/);
  });

  it('prints one line for cron to mail when the copy holds other content under a name, and logs which', async () => {
    await primary.sql('CREATE TABLE after_copy AS SELECT 1 AS id');
    const segment = await primary.switchAndWaitArchived();
    // What the copy would be sent next is already there, with other bytes.
    const stored = readdirSync(join(archive, 'wal_005')).find((name) => name.startsWith(segment))!;
    writeFileSync(join(copy, 'wal_005', stored), 'not this segment');
    const cron = await runAsCron();
    assert.equal(cron.stdout, `walship copy failed with exit 1 (75: an earlier run still holds the lock); see ${log}\n`);
    assert.equal(cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), new RegExp(`ERROR: wal_005/${stored.replaceAll('.', '\\.')}: .* holds 16 bytes under this name, the source \\d+; not overwritten`));
    assert.equal(readFileSync(join(copy, 'wal_005', stored), 'utf8'), 'not this segment');
  });
});

describe("the README's restore of the newest state, after the data files broke", () => {
  let archive: string;
  let home: string;
  let config: string;
  let primary: PostgresCluster;

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    config = join(home, 'walship.yaml');
    writeConfig(config, { WALG_FILE_PREFIX: archive });
    primary = await initProductionCluster(config);
    await primary.start();
    await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)');
    await primary.sql("INSERT INTO marker (phase) SELECT 'before-backup' FROM generate_series(1, 1000)");
    await backupPush(config, primary);
    await primary.sql("INSERT INTO marker (phase) SELECT 'archived' FROM generate_series(1, 1000)");
    await primary.switchAndWaitArchived();
    // Committed, but only in pg_wal: the segment being written is not archived yet.
    await primary.sql("INSERT INTO marker (phase) SELECT 'unarchived' FROM generate_series(1, 1000)");
    await primary.stop('immediate');
    // The data files break; pg_wal survives.
    rmSync(join(primary.dataDir, 'base'), { recursive: true, force: true });
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('brings back every committed row, those only in the old pg_wal included', async () => {
    const steps = substitute(recipe('restore-newest'), [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/lib/postgresql/15/main', primary.dataDir],
    ]).trim().split('\n');
    for (const step of steps) {
      // The service manager's part is the test cluster's; every other step runs as written.
      if (step === 'sudo systemctl stop postgresql@15-main') await primary.stop();
      else if (step === 'sudo systemctl start postgresql@15-main') await primary.start();
      else {
        assert.match(step, /^sudo -u postgres /, `a step not run as the PostgreSQL OS user: ${step}`);
        const done = await runAsPostgresUser(step.replace(/^sudo -u postgres /, ''), { HOME: home, PATH: '/usr/bin:/bin' }, home);
        assert.equal(done.code, 0, `${step}\n${done.stderr}`);
      }
    }
    await primary.waitPromoted();
    const phases = await primary.sql("SELECT string_agg(phase || '=' || n, ' ' ORDER BY phase) FROM (SELECT phase, count(*) AS n FROM marker GROUP BY phase) counts");
    assert.equal(phases, 'archived=1000 before-backup=1000 unarchived=1000');
    assert.ok(existsSync(join(`${primary.dataDir}.broken`, 'pg_wal')), 'the broken data directory is kept aside');
  });
});

describe("the README's point-in-time recipe brings back rows deleted by mistake and a dropped table", () => {
  let archive: string;
  let home: string;
  let primary: PostgresCluster;
  let keysBefore: string[];
  let sideCopy: string;
  let sidePort: number;
  let externalPidFile: string;
  /** The copy's wal-fetch prefetcher, which may outlive the copy by a few seconds. */
  let prefetcher: number | undefined;
  /** The time just before the mistake, as `SELECT now()` prints it in a session with a UTC offset of +05:30. */
  let beforeMistake: string;

  const querySideCopy = (statement: string) =>
    check(join(postgresBin, 'psql'), ['-X', '-A', '-t', '-h', sideCopy, '-p', String(sidePort), '-d', 'shop', '-c', statement], { asPostgres: true }).then((out) => out.trim());

  /** Runs one of the recipe's blocks as the PostgreSQL OS user, whose default server is production. */
  async function runRecipe(name: string): Promise<string> {
    const script = substitute(recipe(name), [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', join(home, 'walship.yaml')],
      ['/etc/postgresql/15/main/postgresql.conf', join(primary.dataDir, 'postgresql.conf')],
      ['/var/lib/postgresql/', `${home}/`],
      [/\b5433\b/g, String(sidePort)],
      ["'2024-05-01 14:02:59+02'", `'${beforeMistake}'`],
    ]);
    const done = await runAsPostgresUser(
      `set -e\n${script}`,
      { HOME: home, PATH: `${postgresBin}:/usr/bin:/bin`, PGHOST: primary.root, PGPORT: String(primary.port) },
      home,
    );
    assert.equal(done.code, 0, `recipe ${name} failed:\n${done.stderr}`);
    return done.stdout + done.stderr;
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    mkdirSync(join(home, '15'));
    giveToPostgres(join(home, '15'));
    sideCopy = join(home, '15', 'pitr');
    sidePort = await freePort();
    const config = join(home, 'walship.yaml');
    writeConfig(config, { WALG_FILE_PREFIX: archive });
    // A copy that kept production's archive_command would reach the archive through the config file.
    primary = await initProductionCluster(config);
    // As in Debian's configuration file, which names them: a copy started with it must not take them over.
    externalPidFile = join(primary.root, 'external.pid');
    primary.configure({ data_directory: primary.dataDir, external_pid_file: externalPidFile });
    await primary.start();
    await primary.sql('CREATE DATABASE shop');
    await primary.sql('CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, phase text NOT NULL)', 'shop');
    await primary.sql("INSERT INTO orders (item, phase) SELECT 'item ' || g, 'before-backup' FROM generate_series(1, 1000) g", 'shop');
    await primary.sql('CREATE TABLE coupons (code text PRIMARY KEY, percent int NOT NULL CHECK (percent BETWEEN 1 AND 100))', 'shop');
    await primary.sql("INSERT INTO coupons SELECT 'C' || g, g FROM generate_series(1, 10) g", 'shop');
    await backupPush(config, primary);

    await primary.sql("INSERT INTO orders (item, phase) SELECT 'item ' || g, 'before-mistake' FROM generate_series(1001, 2000) g", 'shop');
    beforeMistake = await primary.sql("SET TimeZone = 'Asia/Kolkata'; SELECT now()");
    assert.match(beforeMistake, /\+05:30$/);
    await sleep(10);
    // The mistake, then production's own work goes on.
    await primary.sql('DELETE FROM orders WHERE id % 3 = 0', 'shop');
    await primary.sql('DROP TABLE coupons', 'shop');
    await primary.sql("INSERT INTO orders (item, phase) SELECT 'item ' || g, 'after-mistake' FROM generate_series(1, 500) g", 'shop');
    await primary.sql("UPDATE orders SET item = 'changed after the mistake' WHERE id = 1", 'shop');
    await primary.switchAndWaitArchived();
    keysBefore = filesUnder(archive).sort();
  });

  after(async () => {
    const pid = pidInFile(join(sideCopy, 'postmaster.pid'));
    if (pid) await run(join(postgresBin, 'pg_ctl'), ['-D', sideCopy, '-m', 'immediate', 'stop'], { asPostgres: true });
    prefetcher ??= pidInFile(join(home, '15', '.walship-pitr', 'prefetch', '.prefetcher.pid'));
    try {
      if (prefetcher) process.kill(prefetcher, 'SIGKILL');
    } catch {
      // it has exited on its own
    }
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('1. restores a side copy that pauses at the target, with archiving off', async () => {
    const output = await runRecipe('pitr-start');
    assert.match(output, /^backup-fetch: archiving is off \(a recovery target: usually a side copy\)/m);
    assert.equal(await querySideCopy('SELECT pg_get_wal_replay_pause_state()'), 'paused');
    assert.equal(await querySideCopy('SHOW archive_mode'), 'off');
    assert.equal(await querySideCopy('SHOW port'), String(sidePort));
    assert.equal(await querySideCopy('SHOW data_directory'), sideCopy);
  });

  it('2. shows the rows as they were before the mistake, and as they are', async () => {
    assert.equal(await runRecipe('pitr-compare'), `2000\n${2000 - 666 + 500}\n`);
  });

  it('3. loads back the deleted rows, keeping later changes and the sequence, and the dropped table', async () => {
    await runRecipe('pitr-rows');
    const phases = await primary.sql("SELECT string_agg(phase || '=' || n, ' ' ORDER BY phase) FROM (SELECT phase, count(*) AS n FROM orders GROUP BY phase) counts", 'shop');
    assert.equal(phases, 'after-mistake=500 before-backup=1000 before-mistake=1000');
    assert.equal(await primary.sql('SELECT item FROM orders WHERE id = 1', 'shop'), 'changed after the mistake');
    // The sequence was not set back: a new order takes a new id.
    assert.equal(await primary.sql("INSERT INTO orders (item, phase) VALUES ('new', 'new') RETURNING id > 2500", 'shop'), 't');

    await runRecipe('pitr-table');
    assert.equal(await primary.sql('SELECT count(*) FROM coupons', 'shop'), '10');
    assert.equal(await primary.sql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'coupons'::regclass", 'shop'), '2');
  });

  it('4. removes the copy and its spool, and the copy archived nothing', async () => {
    prefetcher = pidInFile(join(home, '15', '.walship-pitr', 'prefetch', '.prefetcher.pid'));
    await runRecipe('pitr-remove');
    assert.ok(!existsSync(sideCopy));
    assert.ok(!existsSync(join(home, '15', '.walship-pitr')), 'the spool, with the storage settings, is removed');
    assert.deepEqual(filesUnder(home).filter((path) => path.endsWith('.dump')), []);
    assert.deepEqual(filesUnder(archive).sort(), keysBefore);
    assert.equal(readFileSync(externalPidFile, 'utf8').trim(), String(primary.pid()), "production's external PID file is its own");
  });
});

describe("the README's nightly backup-verify line, run as cron runs it", () => {
  let archive: string;
  let home: string;
  let log: string;
  let primary: PostgresCluster;
  let command: string;

  const runAsCron = () => runAsPostgresUser(command, { HOME: home, PATH: '/usr/bin:/bin' }, home);

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    home = makePostgresOwnedDirectory('walship-home-');
    const config = join(home, 'walship.yaml');
    log = join(home, 'walship-backup-verify.log');
    primary = await startArchivingPrimary({ WALG_FILE_PREFIX: archive });
    writeConfig(config, { WALG_FILE_PREFIX: archive, ...libpq(primary) });
    await backupPush(config, primary);
    const line = recipe('crontab-verify').trim();
    assert.ok((await check(walshipBinary, ['backup-verify', '--help'])).split('\n').some((shown) => shown.trim() === line), 'backup-verify --help shows the line');
    command = cronCommand('crontab-verify', [
      ['/usr/local/bin/walship', walshipBinary],
      ['/etc/walship.yaml', config],
      ['/var/log/postgresql/walship-backup-verify.log', log],
    ]);
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it('prints nothing for a sound backup, and logs the verdict', async () => {
    const cron = await runAsCron();
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout + cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), /^WALSHIP OK - base_[0-9A-F]{24}: \d+ files match backup_manifest/m);
  });

  it('prints one line for cron to mail when the backup is damaged', async () => {
    const backups = join(archive, 'basebackups_005');
    const name = readdirSync(backups).find((entry) => !entry.endsWith('.json'))!;
    rmSync(join(backups, name, 'tar_partitions', 'part_001.tar.zst'));
    const cron = await runAsCron();
    assert.equal(cron.stdout, `walship backup-verify: exit 2 (1 WARNING, 2 CRITICAL, 3 UNKNOWN, 75: an earlier run still holds the lock); see ${log}\n`);
    assert.equal(cron.stderr, '');
    assert.match(readFileSync(log, 'utf8'), new RegExp(`^WALSHIP CRITICAL - ${name}: .*part_001\\.tar\\.zst is missing`, 'm'));
  });
});

const userUid = (name: string) => Number(spawnSync('id', ['-u', name]).stdout.toString());

describe("the README's encryption commands: the key, its settings, and changing keys", () => {
  let root: string;
  let primary: PostgresCluster;
  let paths: { etc: string; key: string; key2: string; config: string; oldConfig: string; archive: string; archive2: string };
  let replacements: [string, string][];

  /** The README's commands as root runs them; `sudo -u postgres` as runuser does it, plain `sudo` as root itself. */
  const runAsRoot = (script: string) =>
    run('/bin/sh', ['-c', `sudo() { if [ "$1" = -u ]; then user=$2; shift 2; runuser -u "$user" -- "$@"; else "$@"; fi; }\nset -e\n${script}`], {
      env: { PATH: `/usr/sbin:/sbin:/usr/bin:/bin`, HOME: root, ...libpq(primary) },
      cwd: root,
    });
  /** What libsodium's reference, reading the key file as WAL-G does, decrypts of `stored`; undefined when it cannot. */
  const referenceDecrypt = (keyFile: string, stored: Buffer): Buffer | undefined => {
    const result = spawnSync('/usr/bin/python3', [join(projectRoot, 'test/support/libsodium-reference.py'), 'decrypt', 'hex', '--key-file', keyFile], { input: stored, maxBuffer: 64 << 20 });
    return result.status === 0 ? result.stdout : undefined;
  };
  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, cwd: root, env: { PATH: `${postgresBin}:/usr/sbin:/sbin:/usr/bin:/bin`, HOME: root, WALSHIP_PREFETCH: 'false', ...libpq(primary) } });

  before(async () => {
    assert.ok(isRoot, 'the README runs these as root (sudo)');
    root = makePostgresOwnedDirectory('walship-readme-encryption-');
    const etc = join(root, 'etc-walship');
    paths = {
      etc,
      key: join(etc, 'libsodium.key'),
      key2: join(etc, 'libsodium-2.key'),
      config: join(root, 'walship.yaml'),
      oldConfig: join(root, 'walship-1.yaml'),
      archive: join(root, 'archive'),
      archive2: join(root, 'archive-2'),
    };
    mkdirSync(paths.archive);
    giveToPostgres(paths.archive);
    // Longest first: /etc/walship.yaml before /etc/walship.
    replacements = [
      ['/etc/walship-1.yaml', paths.oldConfig],
      ['/etc/walship.yaml', paths.config],
      ['/etc/walship', paths.etc],
      ['/var/lib/walship-2', paths.archive2],
      ['/var/lib/walship', paths.archive],
      ['walship --config', `${walshipBinary} --config`],
    ];
    primary = await PostgresCluster.init({ settings: { archive_mode: 'on', archive_command: `${walshipBinary} --config ${paths.config} wal-push %p` } });
  });

  after(async () => {
    await primary?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  it('creates a random key readable by the postgres user only, which walship and the reference both use', async () => {
    const created = await runAsRoot(substitute(recipe('encryption-key'), replacements));
    assert.equal(created.code, 0, created.stderr);
    assert.match(readFileSync(paths.key, 'utf8'), /^[0-9a-f]{64}\n$/);
    const key = statSync(paths.key);
    assert.equal(key.mode & 0o777, 0o600);
    assert.equal(key.uid, userUid('postgres'));
    assert.equal(statSync(paths.etc).mode & 0o777, 0o750);

    const settings = substitute(recipe('encryption-config'), replacements);
    assert.deepEqual(settings.split('\n').filter((line) => /^[A-Z]/.test(line)).map((line) => line.split(':')[0]), ['WALG_FILE_PREFIX', 'WALG_LIBSODIUM_KEY_PATH', 'WALG_LIBSODIUM_KEY_TRANSFORM'], "WAL-G's names");
    writeFileSync(paths.config, settings, { mode: 0o600 });
    giveToPostgres(paths.config);
    await primary.start();
    const segment = await primary.switchAndWaitArchived();
    const stored = readFileSync(join(paths.archive, 'wal_005', `${segment}.zst`));
    const decrypted = referenceDecrypt(paths.key, stored);
    assert.ok(decrypted, 'the reference decrypts what walship archived, with the key file read as WAL-G reads it');
    const content = zstdDecompressSync(decrypted);
    assert.equal(content.length, 16 << 20);
    assert.equal(content.readUInt16LE(0), 0xd110, "a PostgreSQL 15 segment's page header");
    const fetched = await walship(['--config', paths.config, 'wal-fetch', segment, join(root, 'fetched')]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(readFileSync(join(root, 'fetched')), content);
    assert.equal(JSON.parse(readFileSync(join(paths.archive, 'walship', 'archive.json'), 'utf8')).Encryption, 'libsodium');
  });

  it('changes keys with a new prefix and a backup there, keeping the old prefix restorable', async () => {
    const old = await primary.switchAndWaitArchived();
    const rotated = await runAsRoot(substitute(recipe('encryption-rotate'), replacements));
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.notEqual(readFileSync(paths.key2, 'utf8'), readFileSync(paths.key, 'utf8'));
    assert.equal(statSync(paths.key2).mode & 0o777, 0o600);
    assert.equal(statSync(paths.config).uid, userUid('postgres'), 'the edited config is still the postgres user\'s');
    assert.equal(statSync(paths.config).mode & 0o777, 0o600);

    const segment = await primary.switchAndWaitArchived();
    const stored = readFileSync(join(paths.archive2, 'wal_005', `${segment}.zst`));
    assert.ok(referenceDecrypt(paths.key2, stored), 'the next WAL file is in the new prefix, with the new key');
    assert.equal(referenceDecrypt(paths.key, stored), undefined, 'and not with the old key');
    const listed = await walship(['--config', paths.config, 'backup-list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(JSON.parse(listed.stdout).length, 1, 'a base backup in the new prefix');

    const fetched = await walship(['--config', paths.oldConfig, 'wal-fetch', old, join(root, 'old-fetched')]);
    assert.equal(fetched.code, 0, `the old prefix restores with the old configuration: ${fetched.stderr}`);
    assert.ok(referenceDecrypt(paths.key, readFileSync(join(paths.archive, 'wal_005', `${old}.zst`))));
  });

  it('switches a plaintext archive to encryption with the README\'s encryption-on command', async () => {
    const archive = join(root, 'archive-3');
    const files = join(root, 'files');
    for (const directory of [archive, files]) {
      mkdirSync(directory);
      giveToPostgres(directory);
    }
    const plainConfig = join(root, 'plain.yaml');
    const keyedConfig = join(root, 'keyed.yaml');
    writeConfig(plainConfig, { WALG_FILE_PREFIX: archive });
    writeConfig(keyedConfig, { WALG_FILE_PREFIX: archive, WALG_LIBSODIUM_KEY_PATH: paths.key, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' });
    const segment = (name: string) => {
      writeFileSync(join(files, name), asWalSegment(Buffer.alloc(16 << 20, 7)));
      giveToPostgres(join(files, name));
      return join(files, name);
    };
    assert.equal((await walship(['--config', plainConfig, 'wal-push', segment('000000010000000000000001')])).code, 0);
    const refused = await walship(['--config', keyedConfig, 'wal-push', segment('000000010000000000000002')]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /run `walship encryption-on` once with this key/);

    const switched = await runAsRoot(substitute(recipe('encryption-on'), [['/etc/walship.yaml', keyedConfig], ['walship --config', `${walshipBinary} --config`]]));
    assert.equal(switched.code, 0, switched.stderr);
    assert.match(switched.stdout, /^the archive in file:\/\/\S+ is encrypted from now on \(libsodium, key id [0-9a-f]{16}\)\n$/);
    assert.equal((await walship(['--config', keyedConfig, 'wal-push', join(files, '000000010000000000000002')])).code, 0);
    assert.ok(referenceDecrypt(paths.key, readFileSync(join(archive, 'wal_005', '000000010000000000000002.zst'))), 'encrypted from then on');
  });
});
