// Look-ahead archiving against a real PostgreSQL 15 backlog: the archiver's
// later calls return at once, every segment is stored byte-identical, records
// do not pile up, and killing wal-push mid-upload loses nothing.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { markPushedAheadDone } from '../../src/wal/lookahead/archive-status.ts';
import { ArchivedRecords } from '../../src/wal/lookahead/records.ts';
import { walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, pidInFile, removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

/** The records directory of the one archive a cluster (or data directory) under `root` has used. */
function onlyRecordsDirectory(root: string): string {
  const archived = join(root, '.walship-data', 'archived');
  const archives = readdirSync(archived);
  assert.equal(archives.length, 1, `records for ${archives.length} archives`);
  return join(archived, archives[0]!);
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('look-ahead records and the pusher, without PostgreSQL', () => {
  const root = mkdtempSync(join(tmpdir(), 'walship-lookahead-'));
  const dataDir = join(root, 'data');
  const segments = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004'];
  let recordsA = '';
  after(() => removeAfterHelpers(root));

  const walship = (args: string[], archive: string) =>
    run(walshipBinary, args, { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALG_LOG_LEVEL: 'DEVEL' } });

  it('never trusts a record made for another archive, and the pusher exits when nobody archives', async () => {
    mkdirSync(join(dataDir, 'pg_wal', 'archive_status'), { recursive: true });
    for (const segment of segments) {
      writeFileSync(join(dataDir, 'pg_wal', segment), asWalSegment(Buffer.alloc(1 << 20, segment.at(-1))));
      writeFileSync(join(dataDir, 'pg_wal', 'archive_status', `${segment}.ready`), '');
    }
    const [archiveA, archiveB] = ['a', 'b'].map((name) => join(root, name));
    for (const archive of [archiveA!, archiveB!]) mkdirSync(archive);

    assert.equal((await walship(['wal-push', `pg_wal/${segments[0]}`], archiveA!)).code, 0);
    // The pusher uploads the other waiting files to A, then, with nobody asking for them, exits.
    await waitFor(() => readdirSync(join(archiveA!, 'wal_005')).length === 4, 'the pusher to upload to A');
    recordsA = onlyRecordsDirectory(root);
    await waitFor(() => !existsSync(join(recordsA, '.pusher.pid')), 'the idle pusher to exit', 30_000);

    // Archiving now goes to B: A's records must not answer for it.
    const pushed = await walship(['wal-push', `pg_wal/${segments[1]}`], archiveB!);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.doesNotMatch(pushed.stderr, /already pushed ahead/);
    assert.ok(existsSync(join(archiveB!, 'wal_005', `${segments[1]}.zst`)), 'the segment is in archive B');
    const pusherB = join(root, '.walship-data', 'archived');
    await waitFor(() => readdirSync(pusherB).every((archive) => !existsSync(join(pusherB, archive, '.pusher.pid'))), 'B\'s pusher to exit', 30_000);
  });

  it('ignores a claim left by a dead process whose pid was reused', async () => {
    const segment = '000000010000000000000005';
    writeFileSync(join(dataDir, 'pg_wal', segment), asWalSegment(Buffer.alloc(1 << 20, 5)));
    writeFileSync(join(dataDir, 'pg_wal', 'archive_status', `${segment}.ready`), '');
    // The pid is alive (this test's own), but the process that wrote the claim started at another time.
    writeFileSync(join(recordsA, `${segment}.claim`), `${process.pid} 1`);
    const started = Date.now();
    const pushed = await walship(['wal-push', `pg_wal/${segment}`], join(root, 'a'));
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.ok(Date.now() - started < 10_000, `wal-push waited ${Date.now() - started} ms on a stale claim`);
    assert.ok(existsSync(join(root, 'a', 'wal_005', `${segment}.zst`)));
  });

  it('records its own upload while a pusher runs, so the pusher does not upload the file again', async () => {
    const own = mkdtempSync(join(root, 'own-'));
    const wal = join(own, 'data', 'pg_wal');
    mkdirSync(join(wal, 'archive_status'), { recursive: true });
    mkdirSync(join(own, 'archive'));
    const segment = '000000010000000000000011';
    writeFileSync(join(wal, segment), asWalSegment(Buffer.alloc(1 << 20, 11)));
    writeFileSync(join(wal, 'archive_status', `${segment}.ready`), '');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: join(own, 'archive') };
    // A first push creates the records directory; then this process plays a running pusher.
    assert.equal((await run(walshipBinary, ['wal-push', `pg_wal/${segment}`], { cwd: join(own, 'data'), env })).code, 0);
    const records = new ArchivedRecords(onlyRecordsDirectory(own), 'unused');
    assert.ok(!existsSync(join(records.directory, segment)), 'no record without a pusher: nothing would remove it');
    assert.ok(await records.pusher.acquire());
    try {
      const pushed = await run(walshipBinary, ['wal-push', `pg_wal/${segment}`], { cwd: join(own, 'data'), env });
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.ok(existsSync(join(records.directory, segment)), 'wal-push recorded the file it uploaded itself');
    } finally {
      await records.pusher.release();
    }
  });

  it('stops waiting for an upload in another process after a limit, and uploads itself', async () => {
    const records = new ArchivedRecords(mkdtempSync(join(root, 'records-')), 'file:///somewhere');
    const claim = records.claim('000000010000000000000006');
    assert.ok(await claim.acquire());
    assert.equal(await claim.holder(), process.pid);
    const started = Date.now();
    assert.equal(await records.awaitOtherUpload('000000010000000000000006', join(dataDir, 'pg_wal', segments[0]!), 300), false);
    assert.ok(Date.now() - started >= 300);
    await claim.release();
    assert.equal(await claim.holder(), undefined);
  });
});

describe('marking files pushed ahead as done in archive_status', () => {
  const root = mkdtempSync(join(tmpdir(), 'walship-markdone-'));
  const walDirectory = join(root, 'pg_wal');
  const status = join(walDirectory, 'archive_status');
  after(() => removeAfterHelpers(root));

  const name = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
  const statusOf = (n: number) => readdirSync(status).find((entry) => entry.startsWith(name(n)))?.slice(25);

  it('marks exactly the files recorded for this archive whose file is unchanged, never the current or the newest', async () => {
    mkdirSync(status, { recursive: true });
    for (let n = 1; n <= 7; n++) {
      writeFileSync(join(walDirectory, name(n)), Buffer.alloc(4096, n));
      writeFileSync(join(status, `${name(n)}.ready`), '');
    }
    const records = new ArchivedRecords(mkdtempSync(join(root, 'records-')), 'archive A');
    for (const n of [2, 3, 4, 5, 7]) await records.record(name(n), join(walDirectory, name(n)));
    // 4 changed after its upload; 5's record is for another archive; 6 has no record; 7 is the newest.
    writeFileSync(join(walDirectory, name(4)), Buffer.alloc(8192, 4));
    await new ArchivedRecords(records.directory, 'archive B').record(name(5), join(walDirectory, name(5)));

    const marked = await markPushedAheadDone(records, walDirectory, name(2), 0);
    assert.deepEqual(marked, [name(3)]);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(statusOf), ['ready', 'ready', 'done', 'ready', 'ready', 'ready', 'ready']);
    assert.equal(await records.consume(name(7), join(walDirectory, name(7))), true, "the newest file's record still answers the archiver");
  });

  it('waits for uploads in progress and marks them too, within its limit', async () => {
    const records = new ArchivedRecords(mkdtempSync(join(root, 'records-')), 'archive A');
    for (let n = 8; n <= 10; n++) {
      writeFileSync(join(walDirectory, name(n)), Buffer.alloc(4096, n));
      writeFileSync(join(status, `${name(n)}.ready`), '');
    }
    const upload = records.claim(name(8));
    assert.ok(await upload.acquire());
    setTimeout(() => void records.record(name(8), join(walDirectory, name(8))).then(() => upload.release()), 300);
    const started = Date.now();
    assert.deepEqual(await markPushedAheadDone(records, walDirectory, name(1), 5_000), [name(8)]);
    assert.ok(Date.now() - started >= 300, 'it waited for the upload in progress');

    // An upload that never finishes holds it up only until the limit.
    assert.ok(await records.claim(name(9)).acquire());
    const waitStarted = Date.now();
    assert.deepEqual(await markPushedAheadDone(records, walDirectory, name(1), 200), []);
    assert.ok(Date.now() - waitStarted < 2_000, `waited ${Date.now() - waitStarted} ms`);
  });
});

describe('look-ahead archiving of a real backlog', () => {
  let archive: string;
  let scratch: string;
  let cluster: PostgresCluster;
  const env = () => ({ WALG_FILE_PREFIX: archive, WALG_LOG_LEVEL: 'DEVEL' });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-lookahead-archive-');
    scratch = makePostgresOwnedDirectory('walship-lookahead-scratch-');
    cluster = await PostgresCluster.init({
      env: env(),
      settings: { archive_mode: 'on', archive_command: '/bin/false', wal_keep_size: '2GB', log_min_messages: 'warning' },
    });
    await cluster.start();
    await cluster.sql('CREATE TABLE t (id serial PRIMARY KEY, payload text)');
  });

  after(async () => {
    await cluster?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  /** Writes a little and switches segments `count` times while archiving fails; returns the last segment. */
  async function buildBacklog(count: number): Promise<string> {
    let last = '';
    for (let i = 0; i < count; i++) {
      await cluster.sql("INSERT INTO t (payload) SELECT repeat('x', 200) FROM generate_series(1, 500)");
      last = await cluster.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
      await cluster.sql('SELECT pg_switch_wal()');
    }
    return last;
  }

  async function setArchiveCommand(command: string): Promise<void> {
    await cluster.sql(`ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'`);
    await cluster.sql('SELECT pg_reload_conf()');
  }

  function readyCount(): number {
    return readdirSync(join(cluster.dataDir, 'pg_wal', 'archive_status')).filter((name) => name.endsWith('.ready')).length;
  }

  /** Every archived segment still in pg_wal comes back byte-identical. */
  async function checkArchiveMatchesPgWal(): Promise<number> {
    const pgWal = join(cluster.dataDir, 'pg_wal');
    const done = readdirSync(join(pgWal, 'archive_status')).filter((name) => /^[0-9A-F]{24}\.done$/.test(name)).map((name) => name.slice(0, 24));
    for (const segment of done) {
      const destination = join(scratch, segment);
      const fetched = await run(walshipBinary, ['wal-fetch', segment, destination], { env: { ...process.env, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false' } });
      assert.equal(fetched.code, 0, `${segment}: ${fetched.stderr}`);
      assert.ok(readFileSync(destination).equals(readFileSync(join(pgWal, segment))), `${segment} differs`);
      rmSync(destination);
    }
    return done.length;
  }

  async function archiveCommandRuns(): Promise<number> {
    return Number(await cluster.sql('SELECT archived_count FROM pg_stat_archiver'));
  }

  /** How many files wal-push marked done on the archiver's behalf, from its log lines in PostgreSQL's log. */
  function filesMarkedDone(log: string): number {
    return [...log.matchAll(/marked done, pushed ahead of the archiver files=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  }

  it('drains the backlog in a few archive_command runs, marking the files pushed ahead done', async () => {
    const last = await buildBacklog(24);
    assert.ok(readyCount() >= 24, `backlog of ${readyCount()} .ready files`);
    const runsBefore = await archiveCommandRuns();
    await setArchiveCommand(`${walshipBinary} wal-push %p`);
    // The newest file is left to the archiver, so last_archived_wal reaches it.
    await cluster.waitArchived(last, 120_000);

    const runs = (await archiveCommandRuns()) - runsBefore;
    const marked = filesMarkedDone(readFileSync(cluster.logFile, 'utf8'));
    assert.ok(marked >= 12, `only ${marked} of 24 files were marked done by wal-push (${runs} archive_command runs)`);
    assert.ok(runs + marked >= 24 && runs <= 24 - marked + 1, `${runs} runs and ${marked} marked for 24 files`);
    assert.equal(readyCount(), 0);
    assert.ok((await checkArchiveMatchesPgWal()) >= 24, 'every file marked done is in the archive, byte-identical');
    const records = onlyRecordsDirectory(cluster.root);
    // The pusher's log and the archive's verified identity stay.
    const leftovers = () => readdirSync(records).filter((name) => name !== 'pusher.log' && name !== '.identity');
    await waitFor(() => leftovers().length === 0, 'the pusher to exit');
    assert.deepEqual(leftovers(), [], 'records and claims are used up, and the pusher has exited');
  });

  it('leaves every file to the archiver with PG_READY_RENAME=false', async () => {
    const markedBefore = filesMarkedDone(readFileSync(cluster.logFile, 'utf8'));
    await setArchiveCommand(`PG_READY_RENAME=false ${walshipBinary} wal-push %p`);
    const runsBefore = await archiveCommandRuns();
    const last = await buildBacklog(8);
    await cluster.waitArchived(last, 120_000);
    assert.ok((await archiveCommandRuns()) - runsBefore >= 8, 'the archiver ran archive_command for each file');
    assert.equal(filesMarkedDone(readFileSync(cluster.logFile, 'utf8')), markedBefore);
  });

  it('loses nothing when wal-push is killed at any point, and leaves nothing visible behind', async () => {
    const wrapper = join(scratch, 'kill-walship.sh');
    // Kills wal-push after 20 to 490 ms (wide enough that, on a loaded machine, some calls get as far
    // as starting a pusher); only a wal-push that finished first may report success.
    writeFileSync(wrapper, `#!/bin/sh
"${walshipBinary}" wal-push "$1" & pid=$!
delay=$(( $$ % 48 + 2 ))
sleep $(printf '%d.%02d' $(( delay / 100 )) $(( delay % 100 )))
kill -9 $pid 2>/dev/null
wait $pid && exit 0
exit 1
`);
    chmodSync(wrapper, 0o755);
    giveToPostgres(wrapper);
    await setArchiveCommand(`${wrapper} %p`);
    let last = await buildBacklog(16);
    // Many killed attempts, some mid-upload; the look-ahead pusher is killed over and over too.
    const pusherPidFile = join(onlyRecordsDirectory(cluster.root), '.pusher.pid');
    let pushersKilled = 0;
    const killedRuns = () => readFileSync(cluster.logFile, 'utf8').match(/archive command failed with exit code 1/g)?.length ?? 0;
    // At least 4 s of killing, longer (up to 30 s) until 3 pushers and 3 wal-push runs were killed. The pusher may
    // get ahead (on a loaded machine, or an idle one that drains the backlog quickly) and most calls then return
    // before their kill: new segments keep coming while the backlog is short, so there is always a call to kill.
    const started = Date.now();
    const enough = () => Date.now() - started >= 4000 && pushersKilled >= 3 && killedRuns() >= 3;
    for (const deadline = started + 30_000; Date.now() < deadline && !enough(); await sleep(150)) {
      if (readyCount() < 4) last = await buildBacklog(2);
      const pid = pidInFile(pusherPidFile) ?? 0;
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
          pushersKilled++;
        } catch {
          // already gone
        }
      }
    }
    assert.ok(pushersKilled >= 1, 'the look-ahead pusher was never running to be killed');
    const killed = killedRuns();
    assert.ok(killed >= 3, `only ${killed} wal-push runs were killed`);
    await setArchiveCommand(`${walshipBinary} wal-push %p`);
    await cluster.waitArchived(last, 120_000);

    assert.ok((await checkArchiveMatchesPgWal()) >= 40);
    const visible = readdirSync(join(archive, 'wal_005'));
    assert.deepEqual(visible.filter((name) => !/^[0-9A-F]{24}\.zst$/.test(name)), [], 'no temp files among the objects');
    const temps = existsSync(join(archive, '.walship', 'tmp')) ? readdirSync(join(archive, '.walship', 'tmp')) : [];
    assert.ok(temps.length <= 64, `${temps.length} abandoned temp files`);
  });
});
