// Logical dumps on file storage with a real PostgreSQL 15: dump-push of two
// databases and the globals; a table and a role dropped by mistake brought
// back with dump-restore --table and --globals, the rest untouched;
// dump-fetch files that pg_restore reads (also with -j 2); a parallel
// restore into a new database; bad input; and a pg_dump terminated midway.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { APP_ROLE, createShopAndCrm, roleState, tableContent, tableContents } from '../support/dumps.ts';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { isRoot, run } from '../support/processes.ts';

interface ListedDump {
  dump_name: string;
  start_time: string;
  finish_time: string;
  globals: { sha256: string; role_passwords: boolean };
  databases: { database: string; snapshot_time: string; sha256: string; uncompressed_size: number; system_identifier: string; pg_dump_version: string }[];
}

/** A progress line, printed every 10 s when stderr is no terminal. */
const PROGRESS = /^dump-\w+ \S+: [\d.]+ \w*B( of ~?[\d.]+ \w*B \(\d+%\))?, /;

/** One line on stderr (besides progress), naming what it must, and no stack trace. */
function assertOneLine(result: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split('\n').filter((line) => line && !PROGRESS.test(line));
  assert.equal(lines.length, 1, `expected one line, got: ${result.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

describe('logical dumps on file storage', () => {
  let archive: string;
  let scratch: string;
  let cluster: PostgresCluster;
  let env: Record<string, string>;
  let dump: ListedDump;

  /** Runs walship as the postgres OS user, like cron would. */
  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster), ...extraEnv } });
  const listed = async () => JSON.parse((await walship(['dump-list', '--json'])).stdout) as ListedDump[];
  /** The archive's objects but the record of each attempt, which a failed dump-push leaves for status. */
  const dataObjects = () => filesUnder(archive).filter((path) => !path.includes('/walship/attempts/')).length;
  const client = (program: string, args: string[]) => run(join(postgresBin, program), args, { asPostgres: true, env: { ...process.env, ...libpq(cluster) } });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-dump-archive-');
    scratch = makePostgresOwnedDirectory('walship-dump-scratch-');
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init();
    await cluster.start();
    await createShopAndCrm(cluster);
    const pushed = await walship(['dump-push', '--all', '--json', '--add-user-data', '{"ticket":"DBA-7"}']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, /dump-push: dump_\d{8}T\d{6}Z: 3 databases and the globals, .* compressed/);
    dump = JSON.parse(pushed.stdout) as ListedDump;
  });

  after(async () => {
    await cluster?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it('lists the set: every database with its snapshot time, versions, system identifier and checksum, and the globals', async () => {
    const [only, ...others] = await listed();
    assert.equal(others.length, 0);
    assert.equal(only!.dump_name, dump.dump_name);
    assert.deepEqual(only!.databases.map((database) => database.database), ['crm', 'postgres', 'shop']);
    const systemIdentifier = await cluster.sql('SELECT system_identifier FROM pg_control_system()');
    for (const database of only!.databases) {
      assert.ok(database.snapshot_time >= only!.start_time && database.snapshot_time <= only!.finish_time, database.snapshot_time);
      assert.equal(database.system_identifier, systemIdentifier);
      assert.match(database.pg_dump_version, /^pg_dump \(PostgreSQL\) 15\./);
      assert.match(database.sha256, /^[0-9a-f]{64}$/);
    }
    assert.equal(only!.globals.role_passwords, true);
    const plain = await walship(['dump-list']);
    assert.match(plain.stdout, new RegExp(`${dump.dump_name} .* crm,postgres,shop`));
    const detail = await walship(['dump-list', '--detail']);
    assert.equal(detail.stdout.trim().split('\n').length, 1 + 4, detail.stdout);
  });

  it('brings back a dropped table and a dropped role with dump-restore --table --globals, leaving the rest untouched', async () => {
    const coupons = await tableContent(cluster, 'shop', 'coupons');
    const role = await roleState(cluster, APP_ROLE);
    const crm = await tableContents(cluster, 'crm');
    // After the dump: a change the restore must not undo.
    await cluster.sql('INSERT INTO orders VALUES (20001, NULL, 1.00)', 'shop');
    const orders = await tableContent(cluster, 'shop', 'orders');
    await cluster.sql('DROP TABLE coupons', 'shop');
    await cluster.sql(`DROP ROLE ${APP_ROLE}`);

    const restored = await walship(['dump-restore', dump.dump_name, 'shop', '--table', 'coupons', '--globals']);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stderr, /restored the globals/);
    assert.match(restored.stderr, /restored database "shop" of dump_\w+ into "shop": coupons/);

    assert.equal(await tableContent(cluster, 'shop', 'coupons'), coupons);
    assert.equal(await roleState(cluster, APP_ROLE), role);
    assert.equal(await cluster.sql(`SELECT has_table_privilege('${APP_ROLE}', 'coupons', 'SELECT')::text || has_table_privilege('${APP_ROLE}', 'coupons', 'INSERT')::text`, 'shop'), 'truetrue');
    // Its indexes, constraints, default, sequence and comment came back with it.
    assert.equal(await cluster.sql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'coupons'", 'shop'), 'coupons_code_key,coupons_percent,coupons_pkey');
    assert.equal(await cluster.sql("INSERT INTO coupons (code) VALUES ('NEW') RETURNING id::text || ' ' || percent", 'shop'), '5001 10');
    assert.equal(await cluster.sql("SELECT obj_description('coupons'::regclass)", 'shop'), 'discount codes');
    assert.equal(await tableContent(cluster, 'shop', 'orders'), orders);
    assert.deepEqual(await tableContents(cluster, 'crm'), crm);
  });

  it('writes with dump-fetch a file that pg_restore --list reads and whose -j 2 restore matches the original', async () => {
    const file = join(scratch, 'crm.dump');
    const fetched = await walship(['dump-fetch', dump.dump_name, 'crm', file]);
    assert.equal(fetched.code, 0, fetched.stderr);
    const crm = dump.databases.find((database) => database.database === 'crm')!;
    assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), crm.sha256);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    // The stored zstd frame carries no XXH64 (bit 2 of its header descriptor): the content SHA-256 checks the same bytes.
    const stored = readFileSync(join(archive, 'dumps_005', dump.dump_name, 'databases', 'crm.dump.zst'));
    assert.equal(stored.readUInt32LE(0), 0xfd2fb528);
    assert.equal(stored[4]! & 0b100, 0);
    const list = await client('pg_restore', ['--list', file]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /TABLE DATA public contacts/);

    await cluster.sql('CREATE DATABASE crm_copy');
    const parallel = await client('pg_restore', ['-j', '2', '--exit-on-error', '-d', 'crm_copy', file]);
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.deepEqual(await tableContents(cluster, 'crm_copy'), await tableContents(cluster, 'crm'));

    // Never replaced: a second fetch to the same name is refused and leaves the file as it is.
    const again = await walship(['dump-fetch', dump.dump_name, 'shop', file]);
    assertOneLine(again, /crm\.dump already exists/);
    assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), crm.sha256);

    const globals = join(scratch, 'globals.sql');
    const fetchedGlobals = await walship(['dump-fetch', dump.dump_name, '--globals', globals]);
    assert.equal(fetchedGlobals.code, 0, fetchedGlobals.stderr);
    assert.match(readFileSync(globals, 'utf8'), new RegExp(`CREATE ROLE ${APP_ROLE};`));
  });

  it('restores into a new database with --create --jobs 2 through a temporary file it removes', async () => {
    const temp = makePostgresOwnedDirectory('walship-dump-tmp-');
    try {
      const restored = await walship(['dump-restore', dump.dump_name, 'crm', '--create', '--target-dbname', 'crm_new', '--jobs', '2'], { TMPDIR: temp });
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepEqual(await tableContents(cluster, 'crm_new'), await tableContents(cluster, 'crm'));
      assert.deepEqual(restoreTemporaries(temp), []);
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it('refuses bad input with one line and exit 1, and changes nothing', async () => {
    const before = await tableContents(cluster, 'shop');
    const objects = dataObjects();
    assertOneLine(await walship(['dump-push', '--dbname', 'nope']), /--dbname nope: no such database on the server .*it has: crm, /);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'nope']), /holds no database "nope" \(it holds: crm, postgres, shop\)/);
    assertOneLine(await walship(['dump-restore', 'dump_20000101T000000Z', 'shop']), /dump set dump_20000101T000000Z is not in /);
    assertOneLine(await walship(['dump-restore', 'base_000000010000000000000002', 'shop']), /is not a dump name/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'shop']), /database "shop" is not empty .*--clean/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'crm', '--create']), /database "crm" exists: --create makes a new database/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'crm', '--target-dbname', 'missing']), /database "missing" does not exist: pass --create/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'shop', '--table', 'nosuch']), /--table nosuch: the dump has no such table \(its tables: public\.coupons, public\.orders\)/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'shop', '--schema', 'nosuch']), /--schema nosuch: the dump has nothing in such a schema/);
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'shop', '--jobs', 'x']), /--jobs x is invalid/);
    assertOneLine(await walship(['dump-restore', dump.dump_name]), /name a database of the dump set to restore, or pass --globals/);
    assertOneLine(await walship(['dump-fetch', dump.dump_name, 'shop']), /name the file to write/);
    // The table exists: pg_restore fails, and the one transaction leaves nothing behind.
    assertOneLine(await walship(['dump-restore', dump.dump_name, 'shop', '--table', 'orders']), /relation "orders" already exists.*nothing was restored into "shop"/);
    // A created target is dropped again when the restore fails: here the grant to a role that is gone.
    await cluster.sql(`REVOKE ALL ON coupons FROM ${APP_ROLE}`, 'shop');
    await cluster.sql(`DROP ROLE ${APP_ROLE}`);
    assertOneLine(
      await walship(['dump-restore', dump.dump_name, 'shop', '--create', '--target-dbname', 'shop_bad', '--table', 'coupons']),
      /role "app" does not exist.*database "shop_bad", which this restore created, was dropped again/,
    );
    assert.equal(await cluster.sql("SELECT count(*) FROM pg_database WHERE datname = 'shop_bad'"), '0');
    assert.deepEqual(await tableContents(cluster, 'shop'), before);
    assert.equal(dataObjects(), objects);
  });

  /** A session holding `lock` on `table` of `database` until released: what it blocks waits visibly, for as long as the test likes. */
  async function holdLock(database: string, table: string, lock: string): Promise<() => void> {
    const psql = join(postgresBin, 'psql');
    const locker = spawn(isRoot ? 'runuser' : psql, [...(isRoot ? ['-u', 'postgres', '--', psql] : []), '-X', '-q', '-d', database], {
      env: { ...process.env, ...libpq(cluster) },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    locker.stdin.write(`BEGIN; LOCK TABLE ${table} IN ${lock} MODE;\n`);
    await waitFor(async () => (await cluster.sql(`SELECT count(*) FROM pg_locks WHERE granted AND relation = '${table}'::regclass`, database)) !== '0');
    return () => {
      locker.stdin.end();
      locker.kill();
    };
  }

  /** Waits until a client program's backend waits for a lock in `database`. */
  const blockedOnLock = (program: string, database: string) =>
    waitFor(async () => (await cluster.sql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = '${program}' AND datname = '${database}' AND wait_event_type = 'Lock'`)) !== '0');

  it('fails the whole set when a pg_dump fails midway: exit 1, one line naming the database, nothing listed or left', async () => {
    // crm and postgres are dumped first; pg_dump of shop then waits for this lock until its backend is terminated.
    const release = await holdLock('shop', 'orders', 'ACCESS EXCLUSIVE');
    try {
      const pushing = walship(['dump-push']);
      await blockedOnLock('pg_dump', 'shop');
      await cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = 'shop'");
      assertOneLine(await pushing, /database "shop": pg_dump failed \(exit status 1\): .*(terminating connection due to administrator command|server closed the connection).*; no dump set was stored/);
    } finally {
      release();
    }
    assert.deepEqual((await listed()).map((set) => set.dump_name), [dump.dump_name]);
    // The objects of the failed set are gone (file storage may keep their empty folders, which hold nothing).
    const stored = filesUnder(join(archive, 'dumps_005')).map((path) => path.slice(archive.length + 1));
    assert.ok(stored.every((key) => key.startsWith(`dumps_005/${dump.dump_name}`)), stored.join(', '));
  });

  it('fails the whole set when pg_dumpall fails, stopping the pg_dump beside it: exit 1, one line naming the globals, nothing listed or left', async () => {
    // pg_dumpall --globals-only reads pg_parameter_acl (PostgreSQL 15) and waits for this lock; the pg_dump of shop,
    // dumped beside it, waits for the other. pg_dumpall's backend is then terminated: walship must stop pg_dump itself.
    const releaseGlobals = await holdLock('postgres', 'pg_catalog.pg_parameter_acl', 'ACCESS EXCLUSIVE');
    const releaseShop = await holdLock('shop', 'orders', 'ACCESS EXCLUSIVE');
    try {
      const pushing = walship(['dump-push']);
      await blockedOnLock('pg_dump', 'shop');
      await waitFor(async () => (await cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dumpall' AND wait_event_type = 'Lock'")) !== '0');
      await cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dumpall'");
      assertOneLine(await pushing, /the globals: pg_dumpall failed \(exit status 1\): .*; no dump set was stored/);
    } finally {
      releaseShop();
      releaseGlobals();
    }
    assert.deepEqual((await listed()).map((set) => set.dump_name), [dump.dump_name]);
    const stored = filesUnder(join(archive, 'dumps_005')).map((path) => path.slice(archive.length + 1));
    assert.ok(stored.every((key) => key.startsWith(`dumps_005/${dump.dump_name}`)), stored.join(', '));
  });

  it('stops on SIGINT: dump-push stores nothing, dump-restore --jobs removes its temporary file', async () => {
    // walship itself is the child here (no runuser in between), so the test signals it.
    const postgresIds = isRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) } : {};
    const direct = (args: string[], extraEnv: Record<string, string> = {}) => {
      const child = spawn(walshipBinary, args, { env: { ...process.env, ...env, ...libpq(cluster), ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'], ...postgresIds });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
      const exited = new Promise<{ code: number; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code: code ?? 128, stderr })));
      return { child, exited };
    };
    const objects = dataObjects();
    let release = await holdLock('shop', 'orders', 'ACCESS EXCLUSIVE');
    try {
      const pushing = direct(['dump-push']);
      await blockedOnLock('pg_dump', 'shop');
      pushing.child.kill('SIGINT');
      assertOneLine(await pushing.exited, /dump-push was interrupted: no dump set was stored/);
    } finally {
      release();
    }
    assert.deepEqual((await listed()).map((set) => set.dump_name), [dump.dump_name]);
    assert.equal(dataObjects(), objects);

    const temp = makePostgresOwnedDirectory('walship-dump-tmp-');
    const crmNew = await tableContents(cluster, 'crm_new');
    release = await holdLock('crm_new', 'notes', 'ACCESS SHARE');
    try {
      // --clean makes pg_restore drop notes first, which waits for the lock.
      const restoring = direct(['dump-restore', dump.dump_name, 'crm', '--target-dbname', 'crm_new', '--clean', '--jobs', '2'], { TMPDIR: temp });
      await blockedOnLock('pg_restore', 'crm_new');
      assert.equal(restoreTemporaries(temp).length, 1);
      restoring.child.kill('SIGINT');
      assertOneLine(await restoring.exited, /dump-restore was interrupted; database "crm_new" may hold part of the dump/);
      assert.deepEqual(restoreTemporaries(temp), []);
    } finally {
      release();
      rmSync(temp, { recursive: true, force: true });
    }
    assert.deepEqual(await tableContents(cluster, 'crm_new'), crmNew);
  });
});

/** dump-restore's temporary directories in `directory` (which may also hold walship's zstd addon cache). */
function restoreTemporaries(directory: string): string[] {
  return readdirSync(directory).filter((name) => name.startsWith('walship-dump-restore-'));
}

async function waitFor(probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(50);
  }
}
