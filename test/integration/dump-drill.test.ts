// drill --dump against a real PostgreSQL 15 on file storage: a real dump
// set restored into a new scratch server passes the drill's checks, its
// report is stored as a dump drill and dump-list shows it (backup-list never
// takes it for a backup's); a corrupted dump object is CRITICAL; bad input is
// UNKNOWN with one line. Every time, nothing is left behind: no scratch
// directory, no server process, nothing written to the archive but the report.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APP_ROLE, createShopAndCrm } from '../support/dumps.ts';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';

const DRILL_REPORTS = 'walship/drills';

interface DumpReport {
  kind: string;
  dump: string;
  result: string;
  databases: string[];
  data_checksums: boolean;
  checks: { name: string; state: string; message: string }[];
  report_key?: string;
}

describe('drill --dump on file storage', () => {
  let archive: string;
  let scratch: string;
  let cluster: PostgresCluster;
  let env: Record<string, string>;
  let dumpName: string;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster) } });
  const archiveKeys = () => filesUnder(archive).map((path) => path.slice(archive.length + 1)).filter((key) => !key.startsWith(`${DRILL_REPORTS}/`) && !key.startsWith('walship/attempts/') && !key.startsWith('.walship/')).sort();
  const reportKeys = () => filesUnder(archive).map((path) => path.slice(archive.length + 1)).filter((key) => key.startsWith(`${DRILL_REPORTS}/`)).sort();
  /** PostgreSQL processes whose command line names the scratch directory: the scratch server's. */
  const scratchServers = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(scratch) && !line.startsWith('ps '));

  /** A drill that must leave nothing behind and write nothing but, at most, one report. */
  async function drill(args: string[]) {
    const keysBefore = archiveKeys();
    const reportsBefore = reportKeys().length;
    const result = await walship(['drill', '--scratch', scratch, ...args]);
    assert.deepEqual(archiveKeys(), keysBefore, 'the drill wrote to the archive');
    assert.ok(reportKeys().length <= reportsBefore + 1, 'more than one report');
    assert.deepEqual(readdirSync(scratch), [], 'the scratch directory is left behind');
    assert.deepEqual(scratchServers(), [], 'a scratch server still runs');
    assert.equal(await cluster.sql('SELECT 1'), '1');
    return result;
  }
  const reportOf = (stdout: string) => JSON.parse(stdout.slice(stdout.indexOf('\n') + 1)) as DumpReport;

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-dump-drill-archive-');
    scratch = join(makePostgresOwnedDirectory('walship-dump-drill-'), 'scratch');
    mkdirSync(scratch);
    giveToPostgres(scratch);
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init();
    await cluster.start();
    await createShopAndCrm(cluster);
    const pushed = await walship(['dump-push', '--all', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    dumpName = (JSON.parse(pushed.stdout) as { dump_name: string }).dump_name;
  });

  after(async () => {
    await cluster?.destroy();
    if (archive) rmSync(archive, { recursive: true, force: true });
    if (scratch) rmSync(join(scratch, '..'), { recursive: true, force: true });
  });

  it('drill --dump: OK, the --check-sql statements see the rows and the role, a dump drill report is stored and dump-list shows it', async () => {
    const checks = join(scratch, '..', 'checks.sql');
    writeFileSync(checks, `SELECT count(*) = 1 FROM pg_roles WHERE rolname = '${APP_ROLE}';
\\c shop
SELECT count(*) = 5000 FROM coupons;
SELECT has_table_privilege('${APP_ROLE}', 'coupons', 'INSERT');
\\c crm
SELECT count(*) = 40000 FROM notes;
`);
    giveToPostgres(checks);
    const result = await drill(['--dump', '--check-sql', checks, '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout.split('\n')[0]!, new RegExp(`^WALSHIP OK - dump drill of ${dumpName} passed 5 checks: 3 databases restored in `));
    const report = reportOf(result.stdout);
    assert.equal(report.kind, 'dump');
    assert.deepEqual(report.databases, ['crm', 'postgres', 'shop']);
    assert.deepEqual(report.checks.map((check) => `${check.name} ${check.state}`), ['restore OK', 'connections OK', 'amcheck OK', 'read OK', 'check-sql OK']);
    assert.match(report.checks[2]!.message, /B-tree indexes in 4 databases pass bt_index_check/);
    assert.equal(report.data_checksums, true);
    assert.match(report.report_key!, new RegExp(`^walship/drills/\\d{8}T\\d{6}\\.\\d{3}Z_${dumpName}\\.json$`));
    const stored = JSON.parse(readFileSync(join(archive, report.report_key!), 'utf8')) as DumpReport;
    assert.equal(stored.kind, 'dump');
    assert.equal(stored.result, 'OK');

    const [listed] = JSON.parse((await walship(['dump-list', '--json'])).stdout) as { last_drill: { result: string; report: string } | null }[];
    assert.deepEqual(listed!.last_drill && [listed!.last_drill.result, listed!.last_drill.report], ['OK', report.report_key]);
    const detail = await walship(['dump-list', '--detail']);
    assert.match(detail.stdout, /last_drill\s+drill_result/);
    // A dump drill is no backup's drill: backup-list has no backup to show it with, and warns of nothing.
    const backups = await walship(['backup-list', '--json']);
    assert.equal(backups.code, 0, backups.stderr);
    assert.deepEqual(JSON.parse(backups.stdout), []);
    assert.equal(backups.stderr, '');
  });

  it('a corrupted dump object is CRITICAL, and nothing is left behind', async () => {
    const object = join(archive, 'dumps_005', dumpName, 'databases', 'shop.dump.zst');
    const original = readFileSync(object);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    writeFileSync(object, damaged);
    try {
      const result = await drill(['--dump', dumpName, '--json']);
      assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout.split('\n')[0]!, /^WALSHIP CRITICAL - restore: the dump set cannot be restored: .*shop\.dump\.zst/);
      const report = reportOf(result.stdout);
      assert.deepEqual(report.checks.map((check) => `${check.name} ${check.state}`), ['restore CRITICAL']);
      assert.equal(report.result, 'CRITICAL');
    } finally {
      writeFileSync(object, original);
    }
  });

  it('refuses bad input with one verdict line, UNKNOWN, and no report', async () => {
    const reports = reportKeys();
    const unknown = async (args: string[], pattern: RegExp) => {
      const result = await drill(args);
      assert.equal(result.code, 3, `${result.stdout}\n${result.stderr}`);
      assert.equal(result.stdout.trim().split('\n').length, 1, result.stdout);
      assert.match(result.stdout, pattern);
    };
    await unknown(['--dump', 'dump_20990101T000000Z'], /^WALSHIP UNKNOWN - dump set dump_20990101T000000Z is not in .* dump-list shows the complete dump sets/);
    await unknown(['--dump', 'shop'], /^WALSHIP UNKNOWN - "shop" is not a dump name/);
    await unknown(['base_000000010000000000000002', '--dump'], /^WALSHIP UNKNOWN - drill --dump drills a dump set, not backup base_000000010000000000000002/);
    await unknown(['--dump', '--recovery-target-lsn', '0/3000000'], /^WALSHIP UNKNOWN - --recovery-target-lsn is for backup drills/);
    assert.deepEqual(reportKeys(), reports);
  });
});
