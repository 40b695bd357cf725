// walship as archive_command and restore_command of a real PostgreSQL 15:
// every archived segment is stored and comes back byte-identical, and a
// plain base backup restored with wal-fetch replays exactly the archived rows.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { commitThenLosePrimary, restoreWithWalFetch, startArchivingPrimary } from '../support/scenarios.ts';
import { run } from '../support/processes.ts';

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
    primary = await startArchivingPrimary(env);
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

    const expected = await commitThenLosePrimary(primary);
    restored = await restoreWithWalFetch(backup, backupRoot, env, expected);
    assert.ok(!existsSync(join(backup, 'pg_wal', 'RECOVERYXLOG')));
  });
});
