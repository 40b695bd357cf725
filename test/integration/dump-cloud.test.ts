// Logical dumps on an object store (s3rver): dump-push, dump-list, a table
// and a role brought back by dump-restore streamed from the bucket, a
// dump-fetch file restored by pg_restore -j 2, dump-mark; then delete
// retain 1 --dumps and the newest set's age (what status --max-dump-age
// reports).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APP_ROLE, createShopAndCrm, roleState, tableContent, tableContents } from '../support/dumps.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { dumpAgeFinding } from '../../src/dump/retention.ts';
import { openConfigured } from '../support/storage.ts';
import { loadConfig } from '../../src/config/config.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

describe('logical dumps on S3 (s3rver)', () => {
  let emulator: Emulator;
  let cluster: PostgresCluster;
  let scratch: string;
  let env: Record<string, string>;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster) } });

  before(async () => {
    emulator = await startEmulator.s3();
    env = { ...emulator.settings('cluster-dumps'), PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init();
    await cluster.start();
    await createShopAndCrm(cluster);
    scratch = makePostgresOwnedDirectory('walship-dump-cloud-');
  });

  after(async () => {
    await cluster?.destroy();
    await emulator?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('pushes a dump set, restores a dropped table and role from it, and fetches a file pg_restore -j 2 reads', async () => {
    const pushed = await walship(['dump-push', '--dbname', 'shop', '--dbname', 'crm', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const { dump_name: name } = JSON.parse(pushed.stdout) as { dump_name: string };
    const listed = JSON.parse((await walship(['dump-list', '--json'])).stdout) as { dump_name: string; databases: { database: string }[] }[];
    assert.deepEqual(listed.map((set) => [set.dump_name, set.databases.map((database) => database.database)]), [[name, ['shop', 'crm']]]);

    const coupons = await tableContent(cluster, 'shop', 'coupons');
    const role = await roleState(cluster, APP_ROLE);
    await cluster.sql('DROP TABLE coupons', 'shop');
    await cluster.sql(`DROP ROLE ${APP_ROLE}`);
    const restored = await walship(['dump-restore', name, 'shop', '--table', 'public.coupons', '--globals']);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await tableContent(cluster, 'shop', 'coupons'), coupons);
    assert.equal(await roleState(cluster, APP_ROLE), role);

    const file = join(scratch, 'crm.dump');
    const fetched = await walship(['dump-fetch', name, 'crm', file]);
    assert.equal(fetched.code, 0, fetched.stderr);
    await cluster.sql('CREATE DATABASE crm_copy');
    const parallel = await run(join(postgresBin, 'pg_restore'), ['-j', '2', '--exit-on-error', '-d', 'crm_copy', file], { asPostgres: true, env: { ...process.env, ...libpq(cluster) } });
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.deepEqual(await tableContents(cluster, 'crm_copy'), await tableContents(cluster, 'crm'));

    const marked = await walship(['dump-mark', name]);
    assert.equal(marked.code, 0, marked.stderr);
    const [set] = JSON.parse((await walship(['dump-list', '--json'])).stdout) as { is_permanent: boolean }[];
    assert.equal(set!.is_permanent, true);
  });

  it('keeps the newest and the permanent dump sets under retain 1, deletes the others whole, and reports the age of the newest', async () => {
    for (let pushed = 0; pushed < 2; pushed++) {
      await new Promise((resolve) => setTimeout(resolve, 1100)); // names are start times to the second
      const result = await walship(['dump-push', '--dbname', 'shop']);
      assert.equal(result.code, 0, result.stderr);
    }
    const storage = await openConfigured(loadConfig({ env: env }));
    const load = () => ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true });
    const [permanent, middle, newest] = (await load()).dumpSets().map((set) => set.DumpName);
    const deleted = await walship(['delete', 'retain', '1', '--dumps', '--confirm', '--json']);
    assert.equal(deleted.code, 0, deleted.stderr);
    const plan = JSON.parse(deleted.stdout) as { dump_sets: { dump_name: string; action: string }[] };
    assert.deepEqual(plan.dump_sets.filter((set) => set.action === 'delete').map((set) => set.dump_name), [middle]);
    const after = await load();
    assert.deepEqual(after.dumpSets().map((set) => set.DumpName), [permanent, newest]);
    assert.deepEqual(after.incompleteDumps(), []);
    const objects: string[] = [];
    for await (const object of storage.list(`dumps_005/${middle}`)) objects.push(object.key);
    assert.deepEqual(objects, []);
    assert.equal(dumpAgeFinding(after.dumpSets(), Date.now(), 3_600_000).state, 'OK');
    assert.match(dumpAgeFinding(after.dumpSets(), Date.now() + 7_200_000, 3_600_000).message, new RegExp(`newest dump set ${newest} finished 2:00:\\d\\d ago, more than 1:00:00`));
  });
});
