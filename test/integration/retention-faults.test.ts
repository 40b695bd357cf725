// delete killed with SIGKILL at several points, and a storage that fails
// midway, on s3rver through the fault proxy (a synthetic archive of 2,500
// WAL segments and 6 backups). After every kill, backup-list lists only
// backups whose parts and WAL are all there, and the next run carries on;
// the last one finishes with exactly what an uninterrupted run leaves. A
// refused delete request stops the run with exit 1 and one line, and nothing
// more is deleted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { backupPrefix, classifyKey, metadataKey, partKey, sentinelKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { segmentName, segmentNumberOfName } from '../../src/postgres/wal-name.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { FaultProxy, type FaultRule } from '../support/fault-proxy.ts';
import { walshipBinary } from '../support/paths.ts';
import { run } from '../support/processes.ts';
import { listing } from '../support/retention.ts';
import { openConfigured } from '../support/storage.ts';
import { SyntheticArchive, writeToStorage } from '../support/synthetic-archive.ts';

const STALL = { kind: 'stall' } as const;
const DELETE_OBJECTS = /\?delete/;

describe('delete killed at any point, and a storage that fails midway (s3rver)', () => {
  let emulator: Emulator;
  let proxy: FaultProxy;

  before(async () => {
    emulator = await startEmulator.s3();
    proxy = await FaultProxy.start(emulator.port);
  });
  after(async () => {
    await proxy?.stop();
    await emulator?.stop();
  });

  /** An archive at `path` in the bucket, written directly; walship reaches it through the proxy. */
  async function synthetic(path: string, archive: SyntheticArchive) {
    const direct = emulator.settings(path);
    await writeToStorage(archive, await openConfigured(new Config(direct)));
    // Retries stay on: s3rver answers 500 now and then when a batch empties a folder (its clean-up races with itself).
    const throughProxy = { ...emulator.settings(path, proxy.url), WALG_STORAGE_REQUEST_TIMEOUT: '300', TZ: 'UTC' };
    const walship = (args: string[]) => run(walshipBinary, args, { env: { PATH: process.env.PATH, ...throughProxy } });
    return { direct, throughProxy, walship };
  }

  /** Every listed backup has its parts and metadata, and every WAL segment from its start to the archive's end. */
  async function assertListedRestorable(archive: SyntheticArchive, direct: Record<string, string>): Promise<string[]> {
    const objects = await listing(direct);
    const listed = JSON.parse((await run(walshipBinary, ['backup-list', '--json'], { env: { PATH: process.env.PATH, ...direct } })).stdout) as { backup_name: string; start_lsn: string }[];
    for (const backup of listed) {
      const index = archive.backupNames().indexOf(backup.backup_name);
      for (const part of archive.sentinel(index).Parts) assert.ok(objects.has(partKey(backup.backup_name, part.Name)), `${backup.backup_name} lacks ${part.Name}`);
      assert.ok(objects.has(metadataKey(backup.backup_name)));
      const start = Number(segmentNumberOfLsn(parseLsn(backup.start_lsn), archive.segmentSize));
      for (let segment = start; segment < archive.segments; segment++) {
        if (archive.isMissing(segment)) continue;
        const key = `wal_005/${segmentName(archive.timelineOf(segment), BigInt(segment), archive.segmentSize)}.zst`;
        assert.ok(objects.has(key), `${backup.backup_name} is listed but ${key} is gone`);
      }
    }
    return listed.map((backup) => backup.backup_name);
  }

  /** Starts `delete retain 2 --confirm`, waits until the proxy holds the request `rule` matches, and kills it with SIGKILL. */
  async function killWhenStalled(env: Record<string, string>, rule: Omit<FaultRule, 'fault'>): Promise<void> {
    proxy.inject({ ...rule, fault: STALL });
    const child = spawn(walshipBinary, ['delete', 'retain', '2', '--confirm'], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (proxy.seen.faults === 0) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the delete never reached the request to stall (exit ${child.exitCode}): ${stderr}`);
      await sleep(20);
    }
    child.kill('SIGKILL');
    await exited;
    proxy.clear();
  }

  it('leaves only restorable backups listed whenever it is killed, and the next run carries on to the end', async () => {
    const archive = new SyntheticArchive({ segments: 2500, backups: 6, partsPerBackup: 4 });
    const names = archive.backupNames();
    const { direct, throughProxy, walship } = await synthetic('killed', archive);
    const initial = await listing(direct);
    // What an uninterrupted delete retain 2 leaves: the four oldest backups and the WAL below the fifth's start are gone.
    const firstKept = segmentNumberOfLsn(parseLsn(archive.sentinel(4).LSN), archive.segmentSize);
    const gone = (key: string) => {
      if (names.slice(0, 4).some((name) => key === sentinelKey(name) || key.startsWith(backupPrefix(name)))) return true;
      const kind = classifyKey(key);
      return kind.kind === 'wal' && kind.file.kind === 'segment' && segmentNumberOfName(kind.file.name, archive.segmentSize) < firstKept;
    };
    const expected = [...initial.keys()].filter((key) => !gone(key)).sort();

    // 1. While writing the records of the deletions: nothing is deleted.
    await killWhenStalled(throughProxy, { method: 'PUT', url: /\/walship\/deleting\// });
    assert.deepEqual(await assertListedRestorable(archive, direct), names);
    // 2. While deleting the sentinels: they are all still there, or all gone.
    await killWhenStalled(throughProxy, { method: 'POST', url: DELETE_OBJECTS });
    assert.deepEqual(await assertListedRestorable(archive, direct), names);
    // 3. Sentinels deleted, one backup folder's objects being deleted.
    await killWhenStalled(throughProxy, { method: 'POST', url: DELETE_OBJECTS, after: 1 });
    assert.deepEqual(await assertListedRestorable(archive, direct), names.slice(4));
    assert.ok([...(await listing(direct)).keys()].some((key) => names.slice(0, 4).some((name) => key.startsWith(backupPrefix(name)))), 'a folder was left');
    // 4. The next run finished the folders and removed its records; now listing the WAL.
    await killWhenStalled(throughProxy, { method: 'GET', url: /prefix=[^&]*wal_005/ });
    assert.deepEqual(await assertListedRestorable(archive, direct), names.slice(4));
    const afterFolders = await listing(direct);
    assert.ok(![...afterFolders.keys()].some((key) => key.startsWith('walship/deleting/') || names.slice(0, 4).some((name) => key.startsWith(backupPrefix(name)))));
    // 5. In the middle of the WAL: one batch deleted, the next held.
    await killWhenStalled(throughProxy, { method: 'POST', url: DELETE_OBJECTS, after: 1 });
    assert.deepEqual(await assertListedRestorable(archive, direct), names.slice(4));
    const midWal = await listing(direct);
    assert.ok(midWal.size < afterFolders.size && midWal.size > expected.length, `some WAL deleted, not all: ${afterFolders.size} > ${midWal.size} > ${expected.length}`);

    const finished = await walship(['delete', 'retain', '2', '--confirm']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.deepEqual([...(await listing(direct)).keys()].sort(), expected);
  });

  it('stops at the first refused request with exit 1 and one line, and deletes nothing more', async () => {
    const archive = new SyntheticArchive({ segments: 400, backups: 4, partsPerBackup: 2 });
    const { direct, walship } = await synthetic('refused', archive);
    const initial = await listing(direct);
    proxy.inject({ fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' }, method: 'POST', url: DELETE_OBJECTS });
    const refused = await walship(['delete', 'retain', '1', '--confirm']);
    const deletes = proxy.recorded.filter((request) => request.method === 'POST' || request.method === 'DELETE');
    proxy.clear();
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr.trimEnd(), /^walship delete: ERROR: delete basebackups_005\/base_\S+_backup_stop_sentinel\.json and 2 more keys in s3:\/\/walship-test\/refused\/ failed: AccessDenied \(HTTP 403\): Access Denied; grant s3:DeleteObject$/);
    assert.equal(deletes.length, 1, 'no request after the refused one');
    const after = await listing(direct);
    assert.deepEqual([...after.keys()].filter((key) => !key.startsWith('walship/deleting/')), [...initial.keys()], 'nothing deleted');
    // Granted again, the same command finishes.
    const finished = await walship(['delete', 'retain', '1', '--confirm']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stdout, /^Deleted 3 backups, 3 backup folders and \d+ WAL files: /m);
  });

  it('stops when a request is refused midway: the sentinels gone, nothing after the refused batch, and the next run finishes', async () => {
    const archive = new SyntheticArchive({ segments: 400, backups: 4, partsPerBackup: 2 });
    const names = archive.backupNames();
    const { direct, walship } = await synthetic('midway', archive);
    const initial = await listing(direct);
    // The sentinels' DeleteObjects passes; the next one, the deleted backups' folders, is refused.
    proxy.inject({ fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' }, method: 'POST', url: DELETE_OBJECTS, after: 1 });
    const refused = await walship(['delete', 'retain', '1', '--confirm']);
    const deletes = proxy.recorded.filter((request) => request.method === 'POST' || request.method === 'DELETE');
    proxy.clear();
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr.trimEnd(), /^walship delete: ERROR: delete basebackups_005\/base_\S+\/metadata\.json and \d+ more keys in s3:\/\/walship-test\/midway\/ failed: AccessDenied \(HTTP 403\): Access Denied; grant s3:DeleteObject$/);
    assert.equal(deletes.length, 2, 'no request after the refused one: neither the records nor the WAL');
    assert.deepEqual(await assertListedRestorable(archive, direct), names.slice(3));
    const after = await listing(direct);
    const sentinels = new Set(names.slice(0, 3).map(sentinelKey));
    assert.deepEqual([...after.keys()].filter((key) => !key.startsWith('walship/deleting/')), [...initial.keys()].filter((key) => !sentinels.has(key)), 'only the sentinels are gone');
    assert.equal([...after.keys()].filter((key) => key.startsWith('walship/deleting/')).length, 3, 'the records say the folders may go');
    const finished = await walship(['delete', 'retain', '1', '--confirm']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stdout, /^Deleted 0 backups, 3 backup folders and \d+ WAL files: /m);
    assert.deepEqual(await assertListedRestorable(archive, direct), names.slice(3));
    assert.ok(![...(await listing(direct)).keys()].some((key) => key.startsWith('walship/deleting/') || names.slice(0, 3).some((name) => key.startsWith(backupPrefix(name)))));
  });

  it('stops when a DeleteObjects answer lists a key it could not delete, naming that key', async () => {
    const archive = new SyntheticArchive({ segments: 400, backups: 4, partsPerBackup: 2 });
    const names = archive.backupNames();
    const { direct, walship } = await synthetic('per-key', archive);
    const initial = await listing(direct);
    // HTTP 200, but one key refused: S3 answers so when a policy denies some keys of a batch.
    const refusedKey = `per-key/${sentinelKey(names[0]!)}`;
    const xml = `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Key>${refusedKey}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>`;
    proxy.inject({ fault: { kind: 'status', status: 200, xml }, method: 'POST', url: DELETE_OBJECTS, times: 1 });
    const refused = await walship(['delete', 'retain', '1', '--confirm']);
    const deletes = proxy.recorded.filter((request) => request.method === 'POST' || request.method === 'DELETE');
    proxy.clear();
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`failed: AccessDenied \\(HTTP 403\\): ${sentinelKey(names[0]!)}: Access Denied; grant s3:DeleteObject$`, 'm'));
    assert.equal(deletes.length, 1, 'not sent again, and nothing after it');
    assert.deepEqual([...(await listing(direct)).keys()].filter((key) => !key.startsWith('walship/deleting/')), [...initial.keys()]);
  });
});
