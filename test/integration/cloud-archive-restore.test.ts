// walship as archive_command and restore_command of a real PostgreSQL 15,
// archiving to S3 (s3rver) and to Azure Blob (azurite): every archived
// segment lands in the bucket, and a base backup restored with wal-fetch
// from the bucket replays exactly the archived rows.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { commitThenLosePrimary, restoreWithWalFetch, startArchivingPrimary } from '../support/scenarios.ts';
import { openConfigured } from '../support/storage.ts';

for (const kind of ['s3', 'azure'] as const) {
  describe(`archive and restore a real cluster on ${kind === 's3' ? 'S3 (s3rver)' : 'Azure Blob (azurite)'}`, () => {
    let emulator: Emulator;
    let primary: PostgresCluster;
    let restored: PostgresCluster | undefined;
    let backupRoot: string | undefined;
    let env: Record<string, string>;

    before(async () => {
      emulator = await startEmulator[kind]();
      env = { ...emulator.settings('pg-archive'), WALSHIP_PREFETCH: 'false' };
      primary = await startArchivingPrimary(env);
    });

    after(async () => {
      await restored?.destroy();
      await primary?.destroy();
      if (backupRoot) rmSync(backupRoot, { recursive: true, force: true });
      await emulator?.stop();
    });

    it('archives to the bucket and restores a base backup with wal-fetch to exactly the archived rows', async () => {
      backupRoot = makePostgresOwnedDirectory('walship-cloud-restore-');
      const backup = join(backupRoot, 'data');
      await primary.client('pg_basebackup', ['-D', backup, '-X', 'none', '-c', 'fast', '--no-sync']);

      await primary.pgbench(['-i', '-s', '2', '-q']);
      const expected = await commitThenLosePrimary(primary);
      const last = expected.lastArchived;

      const storage = await openConfigured(new Config(env));
      const stored: string[] = [];
      for await (const object of storage.list('wal_005/')) stored.push(object.key);
      assert.ok(stored.includes(`wal_005/${last}.zst`), `${last} is not in ${storage.location}: ${stored.join(', ')}`);
      assert.ok(stored.length >= 3, `expected several archived segments, got ${stored.length}`);

      restored = await restoreWithWalFetch(backup, backupRoot, env, expected);
    });
  });
}
