// A backup-push running while delete runs again and again (garbage and
// retain 1, confirmed) keeps every part: the new backup completes, restores
// and verifies, and the backup it replaces goes only once it is no longer
// the newest.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

describe('delete while a backup-push runs', () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  const cleanups: (() => Promise<void> | void)[] = [];
  const walshipEnv = () => ({ ...process.env, ...env, ...libpq(primary) });
  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: walshipEnv() });

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-concurrent-');
    env = { WALG_FILE_PREFIX: archive, WALG_TAR_SIZE_THRESHOLD: String(4 << 20), WALG_UPLOAD_CONCURRENCY: '2', WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '8', '-q']);
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it('never deletes the parts of the backup being pushed', async () => {
    const first = await walship(['backup-push']);
    assert.equal(first.code, 0, first.stderr);
    const [older] = (JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string }[]).map((backup) => backup.backup_name);

    let pushing = true;
    const push = walship(['backup-push', '--json']).finally(() => (pushing = false));
    let deletesDuringPush = 0;
    while (pushing) {
      for (const verb of [['garbage'], ['retain', '1']]) {
        const deleted = await walship(['delete', ...verb, '--confirm']);
        assert.equal(deleted.code, 0, deleted.stderr);
        if (pushing) deletesDuringPush++;
      }
    }
    const pushed = await push;
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.ok(deletesDuringPush >= 2, `delete ran ${deletesDuringPush} times during the push`);
    const newer = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;

    const retained = await walship(['delete', 'retain', '1', '--confirm']);
    assert.equal(retained.code, 0, retained.stderr);
    assert.deepEqual((JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string }[]).map((backup) => backup.backup_name), [newer]);
    assert.notEqual(older, newer);

    const root = makePostgresOwnedDirectory('walship-concurrent-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const fetched = await walship(['backup-fetch', join(root, 'data'), newer]);
    assert.equal(fetched.code, 0, fetched.stderr);
    const restored = await PostgresCluster.adopt(join(root, 'data'), root, { settings: { archive_mode: 'off' } });
    cleanups.push(() => restored.destroy());
    await restored.start();
    await restored.waitPromoted();
    assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '800000');
  });
});
