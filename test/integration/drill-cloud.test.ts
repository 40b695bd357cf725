// walship drill against an object store (s3rver): the scratch server's
// restore_command fetches the WAL from S3 with the settings the drill hands
// it, the drill passes, and the bucket afterwards holds exactly what it held
// before plus the drill report and the records of the attempt.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, type PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';
import { startArchivingPrimary } from '../support/scenarios.ts';
import { openConfigured } from '../support/storage.ts';

describe('walship drill on S3 (s3rver)', () => {
  let emulator: Emulator;
  let storage: Storage;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let root: string;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary) } });

  const keys = async () => {
    const listed: string[] = [];
    for await (const object of storage.list('')) listed.push(object.key);
    return listed.sort();
  };

  before(async () => {
    emulator = await startEmulator.s3();
    env = { ...emulator.settings('cluster-a'), PATH: `${postgresBin}:${process.env.PATH}` };
    storage = await openConfigured(new Config(env));
    root = makePostgresOwnedDirectory('walship-drill-cloud-');
    primary = await startArchivingPrimary(env);
    await primary.pgbench(['-i', '-s', '1', '-q']);
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.pgbench(['-t', '200', '-c', '2', '-N']);
    await primary.switchAndWaitArchived();
    await primary.switchAndWaitArchived();
  });

  after(async () => {
    await primary?.destroy();
    await emulator?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('drill LATEST: OK, and the bucket gains the report and the attempt\'s records only', async () => {
    const scratch = join(root, 'scratch');
    mkdirSync(scratch);
    giveToPostgres(scratch);
    const before = await keys();
    const pid = primary.pid();

    const result = await walship(['drill', '--scratch', scratch]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout.split('\n')[0]!, /^WALSHIP OK - drill of base_[0-9A-F]{24} passed 6 checks: RTO /);
    assert.match(result.stdout, /\n  recovery +OK +[\d.]+ s  recovery reached the end of the archive at /);

    const attempts = (await keys()).filter((key) => !before.includes(key) && key.startsWith('walship/attempts/'));
    assert.deepEqual(attempts.map((key) => key.replace(/\/\d{8}T\d{6}\.\d{3}Z_[0-9a-f]{8}_/, '/')).sort(), ['walship/attempts/drill/started.json', 'walship/attempts/drill/succeeded.json']);
    const added = (await keys()).filter((key) => !before.includes(key) && !attempts.includes(key));
    assert.equal(added.length, 1, added.join(', '));
    assert.match(added[0]!, /^walship\/drills\/\d{8}T\d{6}\.\d{3}Z_base_[0-9A-F]{24}\.json$/);
    assert.deepEqual((await keys()).filter((key) => !added.includes(key) && !attempts.includes(key)), before);
    assert.deepEqual(readdirSync(scratch), []);
    assert.equal(primary.pid(), pid);

    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { last_drill: { result: string; report: string } | null }[];
    assert.deepEqual([listed.at(-1)!.last_drill?.result, listed.at(-1)!.last_drill?.report], ['OK', added[0]]);
  });
});
