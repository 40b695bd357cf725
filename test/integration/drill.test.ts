// walship drill against a real PostgreSQL 15 on file storage: a healthy
// archive passes, with the user's checks seeing the rows, a report stored and
// shown by backup-list; a gap in the archive, a corrupt part, a corrupt
// B-tree index and a false check are CRITICAL; unreachable storage, root and
// a scratch file system too small are UNKNOWN. Throughout, the production
// server keeps running, nothing but the report reaches the archive, and the
// scratch directory is gone afterwards, also after SIGTERM; with --keep, the
// commands the drill prints start the kept cluster and remove it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { check, freePort, giveToPostgres, isRoot, POSTGRES_USER, run } from '../support/processes.ts';
import { startArchivingPrimary } from '../support/scenarios.ts';

const DRILL_REPORTS = 'walship/drills';
/** The record of each drill attempt (status reads them). */
const ATTEMPTS = 'walship/attempts';

/** Whether a process runs: a zombie (dead, not yet reaped by init) does not. */
function runs(pid: number): boolean {
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

interface Report {
  backup: string;
  finished_at: string;
  result: string;
  rto_seconds: number | null;
  segments_replayed: number;
  recovery_point: string | null;
  recovery_end_lsn: string | null;
  checks: { name: string; state: string; message: string }[];
  report_key?: string;
}

describe('walship drill on file storage', () => {
  let archive: string;
  let scratch: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let primaryPid: number | undefined;
  /** The segments archived after the backup, in order. */
  const later: string[] = [];
  /** A time between the first and the second round of rows after the backup. */
  let betweenRounds = '';

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });

  /** Every object under the prefix but the drill reports and attempt records (and walship's temp files). */
  const archiveKeys = () =>
    filesUnder(archive)
      .map((path) => path.slice(archive.length + 1))
      .filter((key) => !key.startsWith(`${DRILL_REPORTS}/`) && !key.startsWith(`${ATTEMPTS}/`) && !key.startsWith('.walship/tmp/'))
      .sort();

  const reportKeys = () => (existsSync(join(archive, DRILL_REPORTS)) ? readdirSync(join(archive, DRILL_REPORTS)).sort() : []);

  function sqlFile(name: string, text: string): string {
    const path = join(scratch, '..', `${name}-${process.pid}.sql`);
    writeFileSync(path, text);
    giveToPostgres(path);
    return path;
  }

  /** Runs a drill that must leave production running, the archive as it was but for one report and its attempt's records, and no scratch directory. */
  async function drill(args: string[], extraEnv: Record<string, string> = {}) {
    const keysBefore = archiveKeys();
    const reportsBefore = reportKeys().length;
    const result = await walship(['drill', '--scratch', scratch, ...args], extraEnv);
    assert.deepEqual(archiveKeys(), keysBefore, 'the drill wrote to the archive');
    assert.ok(reportKeys().length <= reportsBefore + 1, 'more than one report');
    assert.deepEqual(readdirSync(scratch), [], 'the scratch directory is left behind');
    assert.equal(primary.pid(), primaryPid, 'the production server restarted');
    assert.equal(await primary.sql('SELECT 1'), '1');
    return result;
  }

  const verdict = (stdout: string) => stdout.split('\n')[0]!;
  const reportOf = (stdout: string) => JSON.parse(stdout.slice(stdout.indexOf('\n') + 1)) as Report;

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-drill-archive-');
    scratch = join(makePostgresOwnedDirectory('walship-drill-'), 'scratch');
    mkdirSync(scratch);
    giveToPostgres(scratch);
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await startArchivingPrimary(env);
    await primary.pgbench(['-i', '-s', '1', '-q']);
    await primary.sql('CREATE TABLE marker (id int PRIMARY KEY, phase text)');
    await primary.sql("INSERT INTO marker SELECT g, 'before' FROM generate_series(1, 5000) g");
    await primary.sql('CREATE DATABASE shop');
    await primary.sql('CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g', 'shop');
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.switchAndWaitArchived();
    for (let round = 1; round <= 3; round++) {
      if (round === 2) betweenRounds = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
      await primary.sql(`INSERT INTO marker SELECT g, 'after' FROM generate_series(${round * 5000 + 1}, ${round * 5000 + 1000}) g`);
      later.push(await primary.switchAndWaitArchived());
    }
    primaryPid = primary.pid();
  });

  after(async () => {
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(join(scratch, '..'), { recursive: true, force: true });
  });

  it('drill LATEST: OK, the --check-sql statements see the rows, a report is stored and backup-list shows it', async () => {
    const checks = sqlFile('checks', `-- every row committed before the last archived segment is back
SELECT count(*) = 8000 FROM marker;
SELECT count(*) = 3000 FROM marker WHERE phase = 'after';
\\c shop
SELECT count(*) = 100 FROM orders;
`);
    const result = await drill(['LATEST', '--check-sql', checks, '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(verdict(result.stdout), /^WALSHIP OK - drill of base_[0-9A-F]{24} passed 7 checks: RTO /);
    const report = reportOf(result.stdout);
    assert.deepEqual(report.checks.map((check) => [check.name, check.state]), [
      ['restore', 'OK'], ['start', 'OK'], ['recovery', 'OK'], ['connections', 'OK'], ['amcheck', 'OK'], ['read', 'OK'], ['check-sql', 'OK'],
    ]);
    assert.match(report.checks.find((check) => check.name === 'recovery')!.message, new RegExp(`end of the archive at .* \\(segment ${later.at(-1)}, timeline 1\\)`));
    assert.match(report.checks.find((check) => check.name === 'check-sql')!.message, /^3 statements return true$/);
    assert.ok(report.rto_seconds! > 0 && report.segments_replayed >= 3, JSON.stringify(report));
    assert.ok(report.recovery_point, 'no recovery point');
    // The promoted scratch server wrote its new timeline's history file nowhere but in its own pg_wal.
    assert.ok(!existsSync(join(archive, 'wal_005', '00000002.history.zst')));

    const stored = reportKeys();
    assert.equal(stored.length, 1);
    assert.equal(`${DRILL_REPORTS}/${stored[0]}`, report.report_key);
    const storedReport = JSON.parse(readFileSync(join(archive, report.report_key!), 'utf8')) as Report;
    assert.equal(storedReport.result, 'OK');
    assert.equal(storedReport.backup, report.backup);

    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string; last_drill: unknown }[];
    const entry = listed.find((backup) => backup.backup_name === report.backup)!;
    assert.deepEqual(entry.last_drill, { time: storedReport.finished_at, result: 'OK', rto_seconds: report.rto_seconds, report: report.report_key });
    const detail = (await walship(['backup-list', '--detail'])).stdout;
    assert.match(detail.split('\n')[0]!, /last_drill\s+drill_result\s+drill_rto$/);
    assert.match(detail.split('\n')[1]!, /\sOK\s+\d/);
  });

  it('a --check-sql statement that returns false: CRITICAL, naming it', async () => {
    const checks = sqlFile('false', 'SELECT true;\nSELECT count(*) = 1 FROM marker;\n');
    const result = await drill(['--check-sql', checks]);
    assert.equal(result.code, 2, result.stdout);
    assert.match(verdict(result.stdout), /^WALSHIP CRITICAL - check-sql: .*false-\d+\.sql, line 2 returned "f", not true: SELECT count\(\*\) = 1 FROM marker$/);
  });

  it('--keep: the restored cluster stays, stopped, and the printed commands start, reach, stop and remove it', async () => {
    const keysBefore = archiveKeys();
    const result = await walship(['drill', '--scratch', scratch, '--keep']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.deepEqual(archiveKeys(), keysBefore, 'the drill wrote to the archive');
    const printed = (label: string) => {
      const line = result.stderr.split('\n').find((shown) => shown.startsWith(`drill:   ${label}`));
      assert.ok(line, `no "${label}" line in:\n${result.stderr}`);
      return line.slice(line.indexOf(': ', 'drill: '.length) + 2).trim();
    };
    const [kept] = readdirSync(scratch);
    assert.ok(kept, 'nothing kept');
    assert.ok(!existsSync(join(scratch, kept, 'data', 'postmaster.pid')), 'the kept cluster still runs');
    const shell = (command: string) => run('/bin/sh', ['-c', command], { asPostgres: true, env: { ...process.env, PATH: `${postgresBin}:${process.env.PATH}` } });
    try {
      const started = await shell(printed('start it'));
      assert.equal(started.code, 0, started.stderr + started.stdout);
      const counted = await shell(`${printed('connect')} -X -A -t -c 'SELECT count(*) FROM marker'`);
      assert.equal(counted.stdout.trim(), '8000', counted.stderr);
      const stopped = await shell(printed('stop it'));
      assert.equal(stopped.code, 0, stopped.stderr);
    } finally {
      const removed = await shell(printed('remove it'));
      assert.equal(removed.code, 0, removed.stderr);
    }
    assert.deepEqual(readdirSync(scratch), []);
    assert.equal(primary.pid(), primaryPid);
  });

  it('a recovery target: OK at the target, with exactly the rows committed before it', async () => {
    const checks = sqlFile('target', 'SELECT count(*) = 6000 FROM marker;\n');
    const result = await drill(['--recovery-target-time', betweenRounds, '--check-sql', checks, '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const report = reportOf(result.stdout);
    assert.match(report.checks.find((check) => check.name === 'recovery')!.message, /^recovery reached the target time /);
    assert.ok(Date.parse(report.recovery_point!) <= Date.parse(betweenRounds.replace(' ', 'T').replace('+00', 'Z')));
  });

  it('a recovery target past the end of the archive: CRITICAL, recovery stopped before the target', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString().replace('T', ' ').replace('Z', '+00');
    const result = await drill(['--recovery-target-time', future]);
    assert.equal(result.code, 2, result.stdout);
    assert.match(verdict(result.stdout), /^WALSHIP CRITICAL - recovery: recovery stopped at [0-9A-F]+\/[0-9A-F]+: recovery ended before configured recovery target was reached/);
  });

  it('storage out of reach: UNKNOWN, one line, in bounded time', async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await walship(['drill', '--scratch', scratch], {
      WALG_FILE_PREFIX: '',
      WALG_S3_PREFIX: 's3://walship-test/nowhere',
      AWS_ENDPOINT: `http://127.0.0.1:${port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
      WALG_STORAGE_MAX_ATTEMPTS: '2',
    });
    assert.equal(result.code, 3, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^WALSHIP UNKNOWN - .*\n$/);
    assert.equal(result.stdout.split('\n').length, 2);
    assert.ok(Date.now() - started < 60_000);
    assert.deepEqual(readdirSync(scratch), []);
  });

  it('as root: UNKNOWN, saying to run it as the PostgreSQL OS user', { skip: !isRoot && 'needs root' }, async () => {
    const result = await run(walshipBinary, ['drill', '--scratch', scratch], { env: { ...process.env, ...env } });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stdout, /^WALSHIP UNKNOWN - walship drill runs PostgreSQL, which refuses to run as root: run it as the PostgreSQL OS user/);
  });

  it('a scratch file system too small for the backup: UNKNOWN at once, nothing restored', { skip: !isRoot && 'needs root to mount a small file system' }, async (t) => {
    const small = join(scratch, '..', 'small');
    mkdirSync(small, { recursive: true });
    const uid = (await check('id', ['-u', POSTGRES_USER])).trim();
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=1m,uid=${uid}`, 'tmpfs', small]);
    if (mounted.code !== 0) return t.skip(`cannot mount a tmpfs here: ${mounted.stderr}`);
    try {
      const result = await walship(['drill', '--scratch', small]);
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stdout, new RegExp(`^WALSHIP UNKNOWN - the file system of ${small} has .* free, but backup base_[0-9A-F]{24} needs .* restored`));
      assert.deepEqual(readdirSync(small), []);
    } finally {
      await check('umount', [small]);
    }
  });

  it('SIGTERM: the scratch server is stopped and its directory removed', { skip: !isRoot && 'needs root to run the drill as postgres' }, async () => {
    const uid = Number(await check('id', ['-u', POSTGRES_USER]));
    const gid = Number(await check('id', ['-g', POSTGRES_USER]));
    const child = spawn(walshipBinary, ['drill', '--scratch', scratch], {
      uid,
      gid,
      env: { ...process.env, ...env, HOME: '/var/lib/postgresql' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`${code ?? signal}`)));
    // Once the scratch server runs, the drill is in its replay or its checks.
    let postmaster: number | undefined;
    const deadline = Date.now() + 120_000;
    while (postmaster === undefined && Date.now() < deadline) {
      const [directory] = readdirSync(scratch);
      const pidFile = directory && join(scratch, directory, 'data', 'postmaster.pid');
      if (pidFile && existsSync(pidFile)) postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]) || undefined;
      else await sleep(20);
    }
    assert.ok(postmaster, 'the scratch server never started');
    child.kill('SIGTERM');
    assert.equal(await exited, '3', `${stdout}\n${stderr}`);
    assert.match(stdout, /^WALSHIP UNKNOWN - the drill was interrupted/);
    assert.deepEqual(readdirSync(scratch), []);
    assert.ok(!runs(postmaster!), 'the scratch server still runs');
    assert.equal(primary.pid(), primaryPid);
  });

  it('a segment missing from the middle of the archive: CRITICAL, recovery stopped at the gap, never OK', async () => {
    const gap = later[1]!;
    const moved = [join('wal_005', `${gap}.zst`), join('.walship', 'metadata', 'wal_005', `${gap}.zst.json`)].filter((key) => existsSync(join(archive, key)));
    for (const key of moved) renameSync(join(archive, key), join(scratch, '..', 'moved-' + key.replaceAll('/', '_')));
    try {
      const result = await drill(['--json']);
      assert.equal(result.code, 2, result.stdout);
      assert.match(verdict(result.stdout), new RegExp(`^WALSHIP CRITICAL - recovery: recovery stopped at [0-9A-F]+/[0-9A-F]+ \\(segment ${later[0]}, timeline 1\\): segment ${gap} is missing from the archive, which holds WAL up to ${later[2]}`));
      assert.equal(reportOf(result.stdout).result, 'CRITICAL');
    } finally {
      for (const key of moved) renameSync(join(scratch, '..', 'moved-' + key.replaceAll('/', '_')), join(archive, key));
    }
  });

  it('a corrupt part in storage: CRITICAL', async () => {
    const [backup] = readdirSync(join(archive, 'basebackups_005')).filter((name) => !name.endsWith('.json'));
    const part = join(archive, 'basebackups_005', backup!, 'tar_partitions', 'part_001.tar.zst');
    const original = join(scratch, '..', 'part.original');
    copyFileSync(part, original);
    try {
      const bytes = readFileSync(part);
      bytes.fill(0x55, bytes.length >> 1, (bytes.length >> 1) + 64);
      writeFileSync(part, bytes);
      const result = await drill([]);
      assert.equal(result.code, 2, result.stdout);
      assert.match(verdict(result.stdout), /^WALSHIP CRITICAL - restore: the backup cannot be restored: .*part_001\.tar\.zst/);
    } finally {
      copyFileSync(original, part);
    }
  });

  it('a B-tree index corrupted in the source before the backup: CRITICAL, naming the index', async () => {
    await primary.sql('CREATE TABLE victim (id int PRIMARY KEY) WITH (autovacuum_enabled = false)');
    await primary.sql('INSERT INTO victim SELECT generate_series(1, 20000)');
    await primary.sql('CHECKPOINT');
    const indexFile = join(primary.dataDir, await primary.sql("SELECT pg_relation_filepath('victim_pkey')"));
    await primary.stop();
    // Block 1's page header becomes impossible (pd_lower, pd_upper and pd_special past the page).
    const bytes = readFileSync(indexFile);
    bytes.fill(0xff, 8192, 8192 + 24);
    writeFileSync(indexFile, bytes);
    await primary.start();
    primaryPid = primary.pid();
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    // The archiver stores the .backup file after the backup's last segment, before the next one.
    await primary.switchAndWaitArchived();
    await primary.switchAndWaitArchived();

    const result = await drill(['LATEST']);
    assert.equal(result.code, 2, result.stdout);
    assert.match(verdict(result.stdout), /^WALSHIP CRITICAL - amcheck: 1 B-tree index fails bt_index_check: index public\.victim_pkey in database postgres: /);
  });
});
