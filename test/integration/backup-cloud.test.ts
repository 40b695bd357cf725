// backup-push and backup-fetch against an object store (azurite, the Azure
// Blob emulator): the WAL archive and the base backup both live there, and
// the restored server finds the storage settings (with the account key) in
// its owner-only config file, with nothing in its environment.
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';
import { backupThenPassATarget, restoreToTarget } from '../support/scenarios.ts';

describe('base backup round trip on Azure Blob storage (azurite)', () => {
  let emulator: Emulator;
  let primary: PostgresCluster;
  let restored: PostgresCluster | undefined;
  let restoreRoot: string;
  let env: Record<string, string>;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary) } });

  before(async () => {
    emulator = await startEmulator.azure();
    env = { ...emulator.settings('cluster-a'), WALG_TAR_SIZE_THRESHOLD: String(4 << 20), PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '1', '-q']);
    restoreRoot = makePostgresOwnedDirectory('walship-restore-');
  });

  after(async () => {
    await restored?.destroy();
    await primary?.destroy();
    await emulator?.stop();
    rmSync(restoreRoot, { recursive: true, force: true });
  });

  it('pushes a backup in parts and restores it to a point in time', async () => {
    const { backup, target } = await backupThenPassATarget(walship, primary);

    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string }[];
    assert.deepEqual(listed.map((entry) => entry.backup_name), [backup.backup_name]);

    ({ restored } = await restoreToTarget(walship, join(restoreRoot, 'data'), restoreRoot, target));
    assert.equal(statSync(join(restoreRoot, '.walship-data', 'walship-recovery.json')).mode & 0o777, 0o600);
  });
});
