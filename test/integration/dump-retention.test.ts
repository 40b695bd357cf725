// delete --dumps end to end on file storage with a real PostgreSQL 15: the
// same verbs over real dump sets, the permanent and the newest set kept,
// backups and WAL untouched; a delete stopped midway (a folder it cannot
// empty) leaves only complete sets listed, and the next run finishes; bad
// input gets one line each.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';
import { listing } from '../support/retention.ts';

interface Plan {
  dump_sets: { dump_name: string; action: string; reasons: string[] }[];
  deleted: { dump_sets: number; dump_folders: number; backups: number; wal_files: number } | null;
}

describe('delete --dumps on file storage, with a real PostgreSQL 15', () => {
  let archive: string;
  let cluster: PostgresCluster;
  let env: Record<string, string>;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster) } });
  const dumpNames = async () => (JSON.parse((await walship(['dump-list', '--json'])).stdout) as { dump_name: string }[]).map((set) => set.dump_name);
  const pushDump = async () => {
    await sleep(1100); // names are start times to the second
    const pushed = await walship(['dump-push', '--dbname', 'postgres']);
    assert.equal(pushed.code, 0, pushed.stderr);
  };
  /** Backups and WAL: what delete --dumps must never touch. */
  const backupsAndWal = async () => [...(await listing(env)).keys()].filter((key) => !key.startsWith('dumps_005/') && !key.startsWith('walship/')).sort();
  const oneLine = (result: { code: number; stderr: string }, pattern: RegExp) => {
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, pattern);
  };

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-dump-retention-');
    env = { WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await cluster.start();
    await cluster.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 1000) g');
    await cluster.switchAndWaitArchived();
    const backup = await walship(['backup-push']);
    assert.equal(backup.code, 0, backup.stderr);
    await cluster.switchAndWaitArchived();
    for (let pushed = 0; pushed < 3; pushed++) await pushDump();
  });

  after(async () => {
    await cluster?.destroy();
    if (archive) rmSync(archive, { recursive: true, force: true });
  });

  it('retain 1 --dumps --confirm deletes the older set, keeps the permanent and the newest, and leaves backups and WAL alone', async () => {
    const [permanent, middle, newest] = await dumpNames();
    assert.equal((await walship(['dump-mark', permanent!])).code, 0);
    const untouched = await backupsAndWal();
    assert.ok(untouched.some((key) => key.startsWith('wal_005/')) && untouched.some((key) => key.startsWith('basebackups_005/')));

    const dryRun = await walship(['delete', 'retain', '1', '--dumps']);
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.match(dryRun.stdout, /^walship delete retain \(newest 1\) --dumps in .*: dry run, nothing is deleted$/m);
    assert.match(dryRun.stdout, new RegExp(`^  keep    ${permanent}  .*permanent$`, 'm'));
    assert.match(dryRun.stdout, new RegExp(`^  delete  ${middle}  .*kept by no rule$`, 'm'));
    assert.match(dryRun.stdout, new RegExp(`^  keep    ${newest}  .*newest 1, newest complete dump set$`, 'm'));
    assert.match(dryRun.stdout, /^Backups and WAL: untouched/m);
    assert.deepEqual(await dumpNames(), [permanent, middle, newest]);

    const confirmed = await walship(['delete', 'retain', '1', '--dumps', '--confirm', '--json']);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    const plan = JSON.parse(confirmed.stdout) as Plan;
    const { dump_sets, dump_folders, backups, wal_files } = plan.deleted!;
    assert.deepEqual({ dump_sets, dump_folders, backups, wal_files }, { dump_sets: 1, dump_folders: 1, backups: 0, wal_files: 0 });
    assert.deepEqual(await dumpNames(), [permanent, newest]);
    assert.equal(existsSync(join(archive, 'dumps_005', middle!)), false);
    assert.deepEqual(await backupsAndWal(), untouched);

    // delete everything (of backups and WAL) leaves dump sets, and its plan says so.
    const everything = await walship(['delete', 'everything']);
    assert.equal(everything.code, 0, everything.stderr);
    assert.match(everything.stdout, /^Note: 2 dump sets stay: delete everything --dumps removes dump sets$/m);
  });

  it('stopped midway, lists only complete sets, and the next run finishes the job', async () => {
    await pushDump();
    const [permanent, older, newest] = await dumpNames();
    // The folder of the set to delete cannot be emptied: delete stops after its record and sentinel.
    const stuck = join(archive, 'dumps_005', older!, 'databases');
    chmodSync(stuck, 0o555);
    try {
      oneLine(await walship(['delete', 'retain', '1', '--dumps', '--confirm']), new RegExp(`dumps_005/${older}/databases`));
    } finally {
      chmodSync(stuck, 0o755);
    }
    assert.deepEqual(await dumpNames(), [permanent, newest], 'the set left dump-list with its sentinel');
    assert.ok(existsSync(join(archive, 'walship', 'deleting', `${older}.json`)), 'the record says its folder may go');
    const plan = JSON.parse((await walship(['delete', 'retain', '1', '--dumps', '--json'])).stdout) as Plan & { dump_folders_without_sentinel: { dump_name: string; action: string; reason: string }[] };
    assert.deepEqual(plan.dump_folders_without_sentinel.map((folder) => [folder.dump_name, folder.action]), [[older, 'delete']]);

    const rerun = await walship(['delete', 'retain', '1', '--dumps', '--confirm']);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(existsSync(join(archive, 'dumps_005', older!)), false);
    assert.equal(existsSync(join(archive, 'walship', 'deleting', `${older}.json`)), false, 'the record went with the folder');
    assert.deepEqual(await dumpNames(), [permanent, newest]);
  });

  it('refuses bad input with one line and exit 1, deleting nothing', async () => {
    const names = await dumpNames();
    const [backup] = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { backup_name: string }[];
    oneLine(await walship(['delete', 'target', backup!.backup_name, '--dumps', '--confirm']), /"base_\w+" is a backup name, and --dumps deletes dump sets only: drop --dumps/);
    oneLine(await walship(['delete', 'target', names[0]!, '--confirm']), /"dump_\w+" is a dump set name: add --dumps/);
    oneLine(await walship(['delete', 'target', names[0]!, '--dumps', '--confirm']), /dump set dump_\w+ is permanent: unmark it with dump-mark --impermanent first/);
    oneLine(await walship(['delete', 'target', names.at(-1)!, '--dumps', '--confirm']), /is the newest complete dump set, which walship always keeps/);
    oneLine(await walship(['delete', 'target', 'dump_20990101T000000Z', '--dumps', '--confirm']), /dump set dump_20990101T000000Z is not among the complete dump sets: dump-list shows their names/);
    oneLine(await walship(['delete', 'before', 'dump_2024', '--dumps']), /"dump_2024" is not a dump set name: expected dump_ and a UTC time/);
    oneLine(await walship(['delete', 'garbage', 'BACKUPS', '--dumps', '--confirm']), /garbage --dumps takes no modifier/);
    oneLine(await walship(['delete', 'retain', '1', '--dumps', '--pitr-window', '7d']), /--pitr-window is about WAL, and delete --dumps never deletes WAL/);
    oneLine(await walship(['delete', 'everything', '--dumps', '--confirm']), /delete everything refuses while permanent dump sets exist \(dump_\w+\): unmark them with dump-mark --impermanent/);
    assert.deepEqual(await dumpNames(), names);
  });
});
