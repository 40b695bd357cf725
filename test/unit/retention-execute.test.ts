// Carrying a retention plan out on file storage, over a small synthetic
// archive: what goes, what stays, and which listings it costs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { storeDrillReport } from '../../src/archive/drills.ts';
import { backupPrefix, deletionRecordKey, sentinelKey } from '../../src/archive/layout.ts';
import { deleteBackups } from '../../src/retention/delete.ts';
import { parseDuration } from '../../src/retention/gfs.ts';
import type { RetentionRequest } from '../../src/retention/plan.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { SyntheticArchive, writeToDirectory } from '../support/synthetic-archive.ts';

const roots: string[] = [];
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

/** A fresh archive of 4 backups over 200 segments, and its storage recording the prefixes it lists. */
async function archiveListedBy(): Promise<{ archive: SyntheticArchive; storage: Storage; listed: string[] }> {
  const root = mkdtempSync(join(tmpdir(), 'walship-retention-execute-'));
  roots.push(root);
  const archive = new SyntheticArchive({ segments: 200, backups: 4, partsPerBackup: 2 });
  writeToDirectory(archive, root);
  const files = await FileStorage.open(root);
  const listed: string[] = [];
  const storage: Storage = Object.assign(Object.create(files) as Storage, {
    list: (prefix: string) => {
      listed.push(prefix);
      return files.list(prefix);
    },
  });
  return { archive, storage, listed };
}

const DAY = 86_400_000;
const retain = (last: number): RetentionRequest => ({ selection: { verb: 'retain', rules: { last } }, incompleteAge: parseDuration('24h', 'test') });
const keysUnder = async (storage: Storage, prefix: string) => {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys;
};

describe('carrying a retention plan out', () => {
  it('deletes the backups the plan deletes, sentinel, folder and record, and the WAL below the oldest kept one', async () => {
    const { archive, storage, listed } = await archiveListedBy();
    const [first, second, third, fourth] = archive.backupNames();
    const outcome = await deleteBackups(storage, retain(2), { confirm: true, now: Date.now(), timeZone: 'UTC' });
    assert.equal(outcome.deleted?.backups, 2);
    assert.equal(outcome.deleted?.folders, 2);
    for (const name of [first!, second!]) {
      assert.equal(await storage.head(sentinelKey(name)), undefined);
      assert.deepEqual(await keysUnder(storage, backupPrefix(name)), []);
    }
    for (const name of [third!, fourth!]) assert.ok(await storage.head(sentinelKey(name)));
    assert.deepEqual(await keysUnder(storage, 'walship/deleting/'), []);
    const wal = await keysUnder(storage, 'wal_005/');
    assert.ok(wal.includes(`wal_005/${third!.slice('base_'.length)}.zst`), 'the oldest kept backup keeps its first segment');
    assert.ok(!wal.includes(`wal_005/${second!.slice('base_'.length)}.zst`));
    assert.deepEqual(listed.slice(0, 3), ['', 'basebackups_005/', 'wal_005/']);
  });

  it('does not list basebackups_005/ again when no backup folder is to go', async () => {
    const { archive, storage, listed } = await archiveListedBy();
    const outcome = await deleteBackups(storage, retain(4), { confirm: true, now: Date.now(), timeZone: 'UTC' });
    assert.equal(outcome.deleted?.backups, 0);
    assert.ok((outcome.deleted?.walFiles ?? 0) > 0, 'the WAL before the oldest backup goes');
    for (const name of archive.backupNames()) assert.ok(await storage.head(sentinelKey(name)));
    assert.deepEqual(listed, ['', 'wal_005/']);
  });

  it('prunes the drill reports of deleted backups drilled more than 90 days ago, but the newest report', async () => {
    const { archive, storage } = await archiveListedBy();
    const [first, second, third] = archive.backupNames();
    const now = Date.now();
    const drilled = (backup: string, ago: number) => storeDrillReport(storage, { backup, finished_at: new Date(now - ago * DAY).toISOString(), result: 'OK', rto_seconds: 7 });
    const pruned = [await drilled(first!, 400), await drilled(second!, 200)];
    // The report of a kept backup stays; so does the newest report of all, however old, so that the last drill is known.
    const staying = [await drilled(third!, 400), await drilled(second!, 95)];
    const planned = await deleteBackups(storage, retain(2), { confirm: false, now, timeZone: 'UTC' });
    assert.deepEqual(planned.plan.drillReports.map((report) => report.key), pruned);
    const outcome = await deleteBackups(storage, retain(2), { confirm: true, now, timeZone: 'UTC' });
    assert.equal(outcome.deleted?.drillReports, 2);
    assert.deepEqual(await keysUnder(storage, 'walship/drills/'), staying.sort());
  });

  it('finishes the folder an earlier delete began whatever the verb, however young its objects', async () => {
    const { archive, storage } = await archiveListedBy();
    const [first, second] = archive.backupNames();
    // A delete killed after its record and the sentinel: the folder is left, young.
    await storage.put(deletionRecordKey(first!), Readable.from([Buffer.from('{}')]));
    await storage.delete(sentinelKey(first!));
    const outcome = await deleteBackups(storage, { selection: { verb: 'target', name: second!, force: false }, incompleteAge: parseDuration('24h', 'test') }, { confirm: true, now: Date.now(), timeZone: 'UTC' });
    assert.deepEqual(outcome.plan.folders.map((folder) => `${folder.action} ${folder.name}`), [`delete ${first}`]);
    assert.equal(outcome.deleted?.folders, 2);
    for (const name of [first!, second!]) assert.deepEqual(await keysUnder(storage, backupPrefix(name)), []);
    assert.deepEqual(await keysUnder(storage, 'walship/deleting/'), []);
  });
});
