import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';
import { AlreadyExistsError, NotFoundError } from '../../src/errors.ts';
import { writeFileAtomically } from '../../src/fs/durable.ts';
import { FileStorage } from '../../src/storage/file.ts';

const directory = mkdtempSync(join(tmpdir(), 'walship-files-'));
after(() => rmSync(directory, { recursive: true, force: true }));

function failingStream(afterBytes: Buffer): Readable {
  return new Readable({
    read() {
      this.push(afterBytes);
      this.destroy(new Error('source broke'));
    },
  });
}

describe('atomic durable writes', () => {
  it('leaves no file, not even a temp file, when the source fails', async () => {
    const target = join(directory, 'atomic', 'dest');
    rmSync(join(directory, 'atomic'), { recursive: true, force: true });
    mkdirSync(join(directory, 'atomic'));
    await assert.rejects(writeFileAtomically(target, failingStream(Buffer.alloc(1000, 1))), /source broke/);
    assert.deepEqual(readdirSync(join(directory, 'atomic')), []);
  });

  it('refuses to replace an existing file in create-only mode', async () => {
    const target = join(directory, 'create-only');
    await writeFileAtomically(target, Readable.from([Buffer.from('first')]), { createOnly: true });
    await assert.rejects(writeFileAtomically(target, Readable.from([Buffer.from('second')]), { createOnly: true }), AlreadyExistsError);
    assert.equal(readFileSync(target, 'utf8'), 'first');
    await writeFileAtomically(target, Readable.from([Buffer.from('third')]));
    assert.equal(readFileSync(target, 'utf8'), 'third');
    assert.deepEqual(readdirSync(directory).filter((name) => name.includes('walship-tmp')), []);
  });
});

describe('file storage', () => {
  it('stores objects with metadata under WAL-G layout keys', async () => {
    const storage = await FileStorage.open(directory);
    await storage.put('wal_005/000000010000000000000001.zst', Readable.from([Buffer.from('abc')]), { metadata: { walship_sha256: 'f00', walship_size: '3' } });
    const head = await storage.head('wal_005/000000010000000000000001.zst');
    assert.equal(head?.size, 3);
    assert.deepEqual(head?.metadata, { walship_sha256: 'f00', walship_size: '3' });
    const stored = await storage.get('wal_005/000000010000000000000001.zst');
    assert.equal((await buffer(stored.body)).toString(), 'abc');
    assert.deepEqual(stored.metadata, { walship_sha256: 'f00', walship_size: '3' });
    assert.equal(readFileSync(join(directory, 'wal_005', '000000010000000000000001.zst'), 'utf8'), 'abc');
  });

  it('reports absence as NotFoundError or undefined, and nothing else', async () => {
    const storage = await FileStorage.open(directory);
    await assert.rejects(storage.get('wal_005/nope'), NotFoundError);
    await assert.rejects(storage.get('nowhere/at/all'), NotFoundError);
    assert.equal(await storage.head('wal_005/nope'), undefined);
  });

  it('lists by prefix in key order, skipping its own hidden files', async () => {
    const storage = await FileStorage.open(directory);
    for (const key of ['list/b/2', 'list/a', 'list/b/1', 'listing', 'other/x']) await storage.put(key, Readable.from([Buffer.from(key)]));
    const keys = async (prefix: string) => {
      const found: string[] = [];
      for await (const info of storage.list(prefix)) found.push(info.key);
      return found;
    };
    assert.deepEqual(await keys('list/'), ['list/a', 'list/b/1', 'list/b/2']);
    assert.deepEqual(await keys('list'), ['list/a', 'list/b/1', 'list/b/2', 'listing']);
    assert.deepEqual(await keys('list/b/'), ['list/b/1', 'list/b/2']);
    assert.deepEqual(await keys('missing/'), []);
    assert.ok(!(await keys('')).some((key) => key.startsWith('.')));
  });

  it('lists a folder of many thousand objects in key order, with its sizes, folders within it in their place', async () => {
    const storage = await FileStorage.open(directory);
    const folder = join(directory, 'many');
    mkdirSync(join(folder, '7f-folder'), { recursive: true });
    // Names in no order, more than one sorted run's worth (file.ts sorts 16,384 names at a time), sizes telling them apart.
    const sizeOf = (name: string) => (parseInt(name, 16) % 7) + 1;
    const names = Array.from({ length: 17_000 }, (_, index) => `${((index * 7919) % 10_000).toString(16).padStart(4, '0')}-${index % 3}`);
    for (const name of names) writeFileSync(join(folder, name), 'x'.repeat(sizeOf(name)));
    writeFileSync(join(folder, '7f-folder', 'inside'), 'x');
    writeFileSync(join(folder, '.hidden-temp'), 'x');
    const listed: { key: string; size: number }[] = [];
    for await (const info of storage.list('many/')) listed.push({ key: info.key, size: info.size });
    const expected = [...names.map((name) => `many/${name}`), 'many/7f-folder/inside'].sort();
    assert.deepEqual(listed.map((info) => info.key), expected);
    assert.deepEqual(listed.filter((info) => info.key !== 'many/7f-folder/inside').map((info) => info.size), expected.filter((key) => !key.includes('folder')).map((key) => sizeOf(key.slice('many/'.length))));
    rmSync(folder, { recursive: true });
  });

  it('tells whether any object starts with a prefix as list() would', async () => {
    const root = join(directory, 'holds');
    mkdirSync(root);
    const storage = await FileStorage.open(root);
    mkdirSync(join(root, 'wal_005', 'empty-folder'), { recursive: true });
    writeFileSync(join(root, 'wal_005', '.walship-tmp-000000010000000000000001'), 'x');
    mkdirSync(join(root, '.walship', 'metadata', 'wal_005'), { recursive: true });
    writeFileSync(join(root, '.walship', 'metadata', 'wal_005', 'x.json'), '{}');
    const listsAny = async (prefix: string) => {
      for await (const _ of storage.list(prefix)) return true;
      return false;
    };
    const both = async (prefix: string) => [await storage.holdsAny(prefix), await listsAny(prefix)];
    for (const prefix of ['wal_005/', 'wal_005/0000', '', 'missing/']) assert.deepEqual(await both(prefix), [false, false], prefix);
    writeFileSync(join(root, 'wal_005', 'empty-folder', '000000010000000000000002.zst'), 'x');
    for (const prefix of ['wal_005/', 'wal_005/empty', 'wal_005/empty-folder/0000', '']) assert.deepEqual(await both(prefix), [true, true], prefix);
    for (const prefix of ['wal_005/0000', 'wal_005/empty-folder/0001', 'basebackups_005/']) assert.deepEqual(await both(prefix), [false, false], prefix);
  });

  it('deletes objects and their metadata; deleting twice is fine', async () => {
    const storage = await FileStorage.open(directory);
    await storage.put('del/x', Readable.from([Buffer.from('x')]), { metadata: { walship_size: '1' } });
    await storage.delete('del/x');
    await storage.delete('del/x');
    assert.equal(await storage.head('del/x'), undefined);
    await storage.put('del/x', Readable.from([Buffer.from('y')]), { createOnly: true });
    assert.deepEqual((await storage.head('del/x'))?.metadata, {});
  });

  it('removes the folders a deleteMany empties, in both trees, but never a top-level one', async () => {
    const storage = await FileStorage.open(directory);
    const keys = ['basebackups_005/base_000000010000000000000002/tar_partitions/part_001.tar.zst', 'basebackups_005/base_000000010000000000000002/metadata.json'];
    for (const key of [...keys, 'basebackups_005/base_000000010000000000000004/metadata.json']) {
      await storage.put(key, Readable.from([Buffer.from(key)]), { metadata: { walship_size: '1' } });
    }
    await storage.deleteMany(keys);
    assert.deepEqual(readdirSync(join(directory, 'basebackups_005')), ['base_000000010000000000000004']);
    assert.deepEqual(readdirSync(join(directory, '.walship/metadata/basebackups_005')), ['base_000000010000000000000004']);
    await storage.deleteMany(['basebackups_005/base_000000010000000000000004/metadata.json']);
    assert.deepEqual(readdirSync(join(directory, 'basebackups_005')), []);
  });

  it('rejects keys that would escape the prefix', async () => {
    const storage = await FileStorage.open(directory);
    for (const key of ['../x', '/abs', 'a/../../b', 'a//b', '']) await assert.rejects(storage.head(key), /invalid storage key/, key);
  });
});
