/**
 * The benchmarks' s3rver (test/support/s3rver-fast.ts) must answer as
 * s3rver does, or the benchmarks would measure walship against a different
 * store: the same archive, written through the Storage interface to both,
 * lists the same keys in the same order and sizes, over several pages, by
 * prefix, while keys are deleted behind the listing (as delete's streamed
 * batches do), and after new keys land in folders a delete had emptied and
 * in folders whose entries it keeps; and its listing's sizes and times are
 * those a HEAD gives, also for keys rewritten since it kept their metadata.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startS3rver } from '../support/emulators.ts';
import { openConfigured } from '../support/storage.ts';
import { SyntheticArchive, writeToStorage } from '../support/synthetic-archive.ts';

/** Two pages of 1,000 keys in wal_005/, three timelines, backups of two parts. */
const archive = new SyntheticArchive({ segments: 1500, backups: 6, partsPerBackup: 2, missingEvery: 400 });

async function listed(storage: Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(`${object.key} ${object.size}`);
  return keys;
}

describe('s3rver-fast answers as s3rver', () => {
  const stores: { emulator: Emulator; storage: Storage }[] = [];

  before(async () => {
    for (const fast of [false, true]) {
      const emulator = await startS3rver({ fast });
      stores.push({ emulator, storage: await openConfigured(new Config(emulator.settings('archive'))) });
    }
    await Promise.all(stores.map(({ storage }) => writeToStorage(archive, storage)));
  });
  after(async () => {
    for (const { emulator } of stores) await emulator.stop();
  });

  const bothList = async (prefix: string) => {
    const [plain, fast] = await Promise.all(stores.map(({ storage }) => listed(storage, prefix)));
    assert.deepEqual(fast, plain, `listing of '${prefix}'`);
    return plain!;
  };

  test('the same keys, in the same order, by prefix', async () => {
    const all = await bothList('');
    assert.equal(all.length, [...archive.objects()].length);
    for (const prefix of ['wal_005/', 'wal_005/00000002', 'basebackups_005/', `basebackups_005/${archive.backupNames()[2]}/`, 'basebackups_005/base_0000000', 'walship/', 'nothing/']) {
      await bothList(prefix);
    }
  });

  test('keys deleted behind a streamed listing, then the listing again', async () => {
    for (const { storage } of stores) {
      let batch: string[] = [];
      for await (const object of storage.list('wal_005/')) {
        // Timelines 1 and 2 (over a page of keys in a row) and every third segment after them, in batches, as delete removes WAL.
        if (object.key < 'wal_005/00000003' || Number.parseInt(object.key.slice(-8, -4), 16) % 3 === 0) batch.push(object.key);
        if (batch.length === 400) {
          await storage.deleteMany(batch);
          batch = [];
        }
      }
      await storage.deleteMany(batch);
      // One backup's whole folder, and its sentinel.
      const backup: string[] = [];
      for await (const object of storage.list(`basebackups_005/${archive.backupNames()[0]}`)) backup.push(object.key);
      await storage.deleteMany(backup);
    }
    const wal = await bothList('wal_005/');
    assert.ok(wal.length < archive.segments - archive.switches[1], 'the deletes took effect');
    await bothList('');
    await bothList(`basebackups_005/${archive.backupNames()[0]}/`);
  });

  test('keys written after a listing, into kept and emptied folders', async () => {
    const name = archive.backupNames()[0]!;
    const added = ['wal_005/000000010000000000000003.zst', 'wal_005/00000004.history', `basebackups_005/${name}/metadata.json`, 'walship/new/one', 'a-first-folder/x'];
    for (const { storage } of stores) {
      // A whole listing first, so s3rver-fast keeps every folder's entries.
      for await (const _ of storage.list('')) continue;
      for (const key of added) await storage.put(key, Readable.from([Buffer.from(key)]));
    }
    const all = await bothList('');
    for (const key of added) assert.ok(all.includes(`${key} ${key.length}`), `${key} is listed`);
    await bothList('wal_005/');
  });

  test('a listing tells what a HEAD tells, for keys rewritten since the last listing too', async () => {
    const { storage } = stores[1]!;
    const rewritten = ['wal_005/000000010000000000000003.zst', `basebackups_005/${archive.backupNames()[1]}/metadata.json`];
    // A listing first, so s3rver-fast keeps every key's metadata; then new contents, of other sizes, a second later.
    for await (const _ of storage.list('')) continue;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    for (const key of rewritten) await storage.put(key, Readable.from([Buffer.from(`${key} rewritten`)]));
    const listed = new Map<string, { size: number; lastModified: number }>();
    for await (const object of storage.list('')) listed.set(object.key, { size: object.size, lastModified: object.lastModified.getTime() });
    const untouched = [...listed.keys()].filter((key) => key.startsWith('wal_005/') && !rewritten.includes(key)).slice(0, 3);
    const checked = [...rewritten, ...untouched, `basebackups_005/${archive.backupNames()[1]}_backup_stop_sentinel.json`];
    for (const key of checked) {
      const head = await storage.head(key);
      assert.ok(head, `${key} exists`);
      assert.deepEqual(listed.get(key), { size: head.size, lastModified: head.lastModified.getTime() }, `${key}: the listing and a HEAD agree`);
    }
    for (const key of rewritten) assert.equal(listed.get(key)!.size, `${key} rewritten`.length, `${key} lists with its new size`);
  });
});

