// walship as archive_command and restore_command of a real PostgreSQL 15:
// every archived segment is stored and comes back byte-identical, and a
// plain base backup restored with wal-fetch replays exactly the archived rows.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';

describe('archive and restore a real cluster on file storage', () => {
  let archive: string;
  let scratch: string;
  let primary: PostgresCluster;
  let restored: PostgresCluster | undefined;
  let env: Record<string, string>;

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    scratch = makePostgresOwnedDirectory('walship-scratch-');
    env = { WALG_FILE_PREFIX: archive };
    primary = await PostgresCluster.init({
      env,
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p`, wal_keep_size: '1GB' },
    });
    await primary.start();
  });

  after(async () => {
    await restored?.destroy();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it('archives every segment pgbench writes, byte-identical after fetch', async () => {
    await primary.pgbench(['-i', '-s', '3', '-q']);
    await primary.pgbench(['-t', '300', '-c', '2', '-N']);
    const last = await primary.switchAndWaitArchived();

    const stored = readdirSync(join(archive, 'wal_005')).filter((name) => /^[0-9A-F]{24}\.zst$/.test(name));
    const pgWal = join(primary.dataDir, 'pg_wal');
    const archivedSegments = readdirSync(join(pgWal, 'archive_status'))
      .filter((name) => name.endsWith('.done') && /^[0-9A-F]{24}\./.test(name))
      .map((name) => name.slice(0, 24))
      .sort();
    assert.ok(archivedSegments.length >= 3, `expected several archived segments, got ${archivedSegments.length}`);
    assert.ok(archivedSegments.includes(last));
    for (const segment of archivedSegments) {
      assert.ok(stored.includes(`${segment}.zst`), `${segment} is missing from the archive`);
      const destination = join(scratch, segment);
      const fetched = await run(walshipBinary, ['wal-fetch', segment, destination], { env: { ...process.env, ...env } });
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.ok(readFileSync(destination).equals(readFileSync(join(pgWal, segment))), `${segment} differs after fetch`);
      rmSync(destination);
    }
  });

  it('restores a base backup with wal-fetch to exactly the archived rows', async () => {
    const backupRoot = makePostgresOwnedDirectory('walship-restore-');
    const backup = join(backupRoot, 'data');
    await primary.client('pg_basebackup', ['-D', backup, '-X', 'none', '-c', 'fast', '--no-sync']);

    await primary.sql('CREATE TABLE marker (id int PRIMARY KEY, phase text)');
    await primary.sql("INSERT INTO marker SELECT g, 'archived' FROM generate_series(1, 5000) g");
    await primary.pgbench(['-t', '200', '-c', '2', '-N']);
    const expectedHistory = await primary.sql('SELECT count(*) FROM pgbench_history');
    await primary.switchAndWaitArchived();
    // Committed after the last archived segment: must not be in the restored cluster.
    await primary.sql("INSERT INTO marker SELECT g, 'unarchived' FROM generate_series(5001, 6000) g");
    // An immediate stop, like a lost disk: a clean shutdown would archive the last segment too.
    await primary.stop('immediate');

    restored = await PostgresCluster.adopt(backup, backupRoot, {
      env,
      settings: { restore_command: `${walshipBinary} wal-fetch %f %p`, archive_mode: 'off' },
    });
    restored.writeFile('recovery.signal', '');
    await restored.start();
    await restored.waitPromoted();

    assert.equal(await restored.sql("SELECT count(*) FROM marker WHERE phase = 'archived'"), '5000');
    assert.equal(await restored.sql("SELECT count(*) FROM marker WHERE phase = 'unarchived'"), '0');
    assert.equal(await restored.sql('SELECT count(*) FROM pgbench_history'), expectedHistory);
    assert.match(readFileSync(restored.logFile, 'utf8'), /archive recovery complete/);
    assert.ok(!existsSync(join(backup, 'pg_wal', 'RECOVERYXLOG')));
  });
});
