// Two clusters initdb'ed separately, one archive: the first cluster's push
// records that it owns the archive; every segment of the second is refused
// with the system-identifier message and exit 1, whatever its name, and so is
// its backup-push, before any data moves; the archive stays as it was, and
// the first cluster keeps archiving.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { readWalLongPageHeader } from '../../src/postgres/wal-header.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';
import { startArchivingPrimary } from '../support/scenarios.ts';

const IDENTITY = join('walship', 'archive.json');

/** Every file under `directory` with a digest of its content, except walship's temp files and the record of each attempt (status reports a refused backup-push). */
function listing(directory: string): string[] {
  if (!existsSync(directory)) return [];
  return readdirSync(directory, { recursive: true })
    .map(String)
    .filter((name) => !name.startsWith('.walship/tmp') && !name.startsWith('walship/attempts/') && statSync(join(directory, name)).isFile())
    .sort()
    .map((name) => `${name} ${createHash('sha256').update(readFileSync(join(directory, name))).digest('hex')}`);
}

async function waitFor(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('another cluster archiving into the same prefix', () => {
  let archive: string;
  let env: Record<string, string>;
  let first: PostgresCluster;
  let second: PostgresCluster;
  let firstId: string;
  let secondId: string;
  /** The archive as it was before the second cluster started. */
  let untouched: string[];
  const cleanups: (() => Promise<void> | void)[] = [];

  const systemIdentifier = (cluster: PostgresCluster) => cluster.sql('SELECT system_identifier FROM pg_control_system()');
  /** walship as the postgres OS user, from `cluster`'s data directory, like archive_command and cron. */
  const walship = (cluster: PostgresCluster, args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, cwd: cluster.dataDir, env: { ...process.env, ...env, ...libpq(cluster), ...extraEnv } });
  const refusal = (owner: string, evidence: string, source: string) =>
    `the archive in file://${archive} belongs to the cluster with system identifier ${owner} (${evidence}), but ${source} cluster ${secondId}: after initdb or pg_upgrade, archive into a new prefix (WALG_FILE_PREFIX); nothing was stored`;

  /** Writes a little and switches to a new segment `count` times. */
  async function writeSegments(cluster: PostgresCluster, count: number): Promise<void> {
    await cluster.sql('CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, payload text)');
    for (let i = 0; i < count; i++) {
      await cluster.sql("INSERT INTO t (payload) SELECT repeat('x', 100) FROM generate_series(1, 200)");
      await cluster.sql('SELECT pg_switch_wal()');
    }
  }

  /** Waits until the second cluster's pusher has refused the newest of its waiting segments, and exited. */
  async function pusherRefusedAll(): Promise<void> {
    const records = join(second.root, '.walship-data', 'archived');
    const [directory = ''] = readdirSync(records);
    const pusherLog = () => readFileSync(join(records, directory, 'pusher.log'), 'utf8');
    const refusedNewest = /look-ahead upload of 000000010000000000000008 failed; the archiver will retry it: the archive in .* belongs to the cluster with system identifier/;
    await waitFor(() => refusedNewest.test(pusherLog()), "the second cluster's pusher to refuse the newest segment");
    await waitFor(() => !existsSync(join(records, directory, '.pusher.pid')), "the second cluster's pusher to exit");
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    cleanups.push(() => rmSync(archive, { recursive: true, force: true }));
    env = { WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
    assert.deepEqual(listing(archive), []);
    first = await startArchivingPrimary(env);
    cleanups.push(() => first.destroy());
    firstId = await systemIdentifier(first);
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("records the first cluster as the archive's owner on its first push, from the segment's own header", async () => {
    const segment = await first.switchAndWaitArchived();
    assert.equal(segment, '000000010000000000000001');
    const recorded = JSON.parse(readFileSync(join(archive, IDENTITY), 'utf8')) as { SystemIdentifier: unknown };
    assert.equal(recorded.SystemIdentifier, firstId);
    // The header of a real segment, as wal-push reads it.
    const header = readWalLongPageHeader(join(first.dataDir, 'pg_wal', segment));
    assert.deepEqual(header, { postgresVersion: 15, systemIdentifier: firstId, segmentSize: Number(await first.sql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")) });
    await writeSegments(first, 2);
    await first.switchAndWaitArchived(); // segments 1 to 4 are archived
    untouched = listing(archive);
  });

  it("refuses the second cluster's segments, colliding names or not, from the archiver and from its look-ahead pusher", async () => {
    second = await PostgresCluster.init({
      env: { ...env, WALG_LOG_LEVEL: 'NORMAL' }, // the pusher logs its failures at NORMAL
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p`, wal_keep_size: '1GB' },
    });
    cleanups.push(() => second.destroy());
    await second.start();
    secondId = await systemIdentifier(second);
    assert.notEqual(secondId, firstId);
    // Segments 1 to 8 wait: 1 to 4 share names with the first cluster's, 5 to 8 do not.
    await writeSegments(second, 8);

    // The archiver fails on segment 1; the pusher its wal-push started tries the other seven.
    // Three tries, then it waits a minute: the pusher's log is the last one's.
    await waitFor(async () => Number(await second.sql('SELECT failed_count FROM pg_stat_archiver')) >= 3, 'the archiver to fail three times');
    assert.equal(await second.sql('SELECT last_failed_wal FROM pg_stat_archiver'), '000000010000000000000001');
    assert.equal(await second.sql('SELECT archived_count FROM pg_stat_archiver'), '0');
    assert.ok(readFileSync(second.logFile, 'utf8').includes(refusal(firstId, 'walship/archive.json', 'pg_wal/000000010000000000000001 was written by')), second.tailLog());

    await pusherRefusedAll();
    assert.deepEqual(listing(archive), untouched, 'the archive is unchanged');
  });

  it('refuses a segment whose name is new to the archive when wal-push is run by hand, with or without look-ahead', async () => {
    // NORMAL, for the pusher's log; at the default level the refusal is the only line.
    for (const extra of [{ WALG_LOG_LEVEL: 'NORMAL' }, { WALG_UPLOAD_CONCURRENCY: '1' }] as Record<string, string>[]) {
      const pushed = await walship(second, ['wal-push', 'pg_wal/000000010000000000000007'], extra);
      assert.equal(pushed.code, 1, pushed.stderr);
      const lines = pushed.stderr.trim().split('\n').filter((line) => !extra.WALG_LOG_LEVEL || line.includes('ERROR'));
      assert.equal(lines.length, 1, pushed.stderr);
      assert.ok(lines[0]!.includes(refusal(firstId, 'walship/archive.json', 'pg_wal/000000010000000000000007 was written by')), pushed.stderr);
    }
    await pusherRefusedAll();
    assert.deepEqual(listing(archive), untouched, 'the archive is unchanged');
  });

  it("refuses the second cluster's backup-push before any part is uploaded", async () => {
    const pushed = await walship(second, ['backup-push']);
    assert.equal(pushed.code, 1, pushed.stderr);
    assert.equal(pushed.stderr.trim().split('\n').length, 1, pushed.stderr);
    assert.ok(pushed.stderr.includes(refusal(firstId, 'walship/archive.json', `the server with data directory ${second.dataDir} is`)), pushed.stderr);
    assert.ok(!existsSync(join(archive, 'basebackups_005')), 'nothing of a backup was stored');
    assert.deepEqual(listing(archive), untouched, 'the archive is unchanged');
  });

  it('lets the first cluster keep archiving', async () => {
    const segment = await first.switchAndWaitArchived();
    assert.ok(existsSync(join(archive, 'wal_005', `${segment}.zst`)));
    assert.equal(JSON.parse(readFileSync(join(archive, IDENTITY), 'utf8')).SystemIdentifier, firstId);
  });

  it("records the owner on a backup-push into an empty archive, and judges an archive without a record by its backups", async () => {
    const fresh = makePostgresOwnedDirectory('walship-fresh-archive-');
    cleanups.push(() => rmSync(fresh, { recursive: true, force: true }));
    const pushed = await walship(first, ['backup-push', '--json'], { WALG_FILE_PREFIX: fresh });
    assert.equal(pushed.code, 0, pushed.stderr);
    const backup = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    assert.equal(JSON.parse(readFileSync(join(fresh, IDENTITY), 'utf8')).SystemIdentifier, firstId);

    // As an older walship or WAL-G left it: backups, but no record of the owner.
    rmSync(join(fresh, IDENTITY));
    const unrecorded = listing(fresh);
    // No look-ahead: a pusher would still be reading this archive when the test removes it.
    const refused = await walship(second, ['wal-push', 'pg_wal/000000010000000000000005'], { WALG_FILE_PREFIX: fresh, WALG_UPLOAD_CONCURRENCY: '1' });
    assert.equal(refused.code, 1, refused.stderr);
    assert.ok(refused.stderr.includes(refusal(firstId, `backup ${backup}`, 'pg_wal/000000010000000000000005 was written by').replace(archive, fresh)), refused.stderr);
    assert.deepEqual(listing(fresh), unrecorded, 'nothing was stored');
  });
});
