/**
 * The storage contract every backend must keep, run against file storage,
 * S3 (s3rver), Azure Blob (azurite) and GCS (the Firebase storage emulator).
 * Each backend is opened through openStorage() from WAL-G-style settings,
 * exactly as the commands open it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { AlreadyExistsError, NotFoundError, WalshipError } from '../../src/errors.ts';
import { METADATA_CRC32, METADATA_SIZE } from '../../src/stages/object-metadata.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { forEachConcurrently } from '../../src/util/concurrency.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { openConfigured } from '../support/storage.ts';

interface Backend {
  name: string;
  /** False where the emulator ignores the service's create-only precondition. */
  conditionalCreate: boolean;
  start(): Promise<{ settings(path: string): Record<string, string>; stop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'file',
    conditionalCreate: true,
    start: async () => {
      const root = mkdtempSync(join(tmpdir(), 'walship-contract-'));
      return { settings: () => ({ WALG_FILE_PREFIX: root }), stop: async () => rmSync(root, { recursive: true, force: true }) };
    },
  },
  { name: 's3 (s3rver)', conditionalCreate: false, start: () => startEmulator.s3() },
  { name: 'azure (azurite)', conditionalCreate: true, start: () => startEmulator.azure() },
  { name: 'gcs (storage emulator)', conditionalCreate: false, start: () => startEmulator.gcs() },
];

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

for (const backend of backends) {
  describe(`storage contract: ${backend.name}`, () => {
    let server: Awaited<ReturnType<Backend['start']>>;
    let storage: Storage;

    before(async () => {
      server = await backend.start();
      storage = await openConfigured(new Config({ ...server.settings('contract/archive'), WALG_STORAGE_MAX_ATTEMPTS: '2' }));
    });
    after(async () => server?.stop());

    for (const size of [0, 1, 50 << 20]) {
      test(`put then get round-trips ${size} bytes`, async () => {
        const data = randomBytes(size);
        const key = `roundtrip/object-${size}`;
        await storage.put(key, Readable.from(size ? [data] : []));
        const stored = await storage.get(key);
        assert.equal(stored.info.key, key);
        assert.equal(stored.info.size, size);
        const read = await readAll(stored.body);
        assert.equal(read.length, size);
        assert.equal(sha256(read), sha256(data));
      });
    }

    test('metadata round-trips through put, head and get', async () => {
      const metadata = { [METADATA_CRC32]: crc32(Buffer.from('wal')).toString(16), [METADATA_SIZE]: '3' };
      await storage.put('metadata/object', Readable.from([Buffer.from('wal')]), { metadata });
      const head = await storage.head('metadata/object');
      assert.ok(head);
      assert.equal(head.size, 3);
      assert.ok(head.lastModified instanceof Date && !Number.isNaN(head.lastModified.getTime()));
      assert.deepEqual(head.metadata, metadata);
      const stored = await storage.get('metadata/object');
      assert.deepEqual(stored.metadata, metadata);
      await readAll(stored.body);
    });

    test('a CRC-32 of the stored bytes, where the backend records one, is theirs; file storage records one with metadata', async () => {
      const bytes = Buffer.from('stored bytes');
      await storage.put('stored-crc/object', Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]), { metadata: { [METADATA_SIZE]: '40' } });
      const stored = await storage.get('stored-crc/object');
      await readAll(stored.body);
      if (storage.capabilities.localFileSystem) assert.equal(stored.storedCrc32, crc32(bytes).toString(16).padStart(8, '0'));
      if (stored.storedCrc32 !== undefined) assert.equal(stored.storedCrc32, crc32(bytes).toString(16).padStart(8, '0'));
      assert.deepEqual(stored.metadata, { [METADATA_SIZE]: '40' }, 'the record is not part of the metadata');
    });

    test('a put of bytes known beforehand round-trips them; one whose body fails at its end stores nothing', async () => {
      const bytes = randomBytes(3 << 20);
      const known = { size: bytes.length, checksum: { algorithm: 'sha256' as const, hex: sha256(bytes) }, reopen: async () => Readable.from([bytes]) };
      await storage.put('known/whole', Readable.from([bytes.subarray(0, 1 << 20), bytes.subarray(1 << 20)]), { known, createOnly: true });
      assert.equal(sha256(await readAll((await storage.get('known/whole')).body)), sha256(bytes));
      const failing = Readable.from((async function* () {
        yield bytes;
        throw new Error('not the bytes the source recorded');
      })());
      await assert.rejects(storage.put('known/failed', failing, { known, createOnly: true }), /not the bytes the source recorded/);
      assert.equal(await storage.head('known/failed'), undefined);
    });

    test('a create-only put creates a new object', async () => {
      await storage.put('create-only/new', Readable.from([Buffer.from('first')]), { createOnly: true });
      assert.equal((await readAll((await storage.get('create-only/new')).body)).toString(), 'first');
    });

    test(
      'a create-only put never replaces an existing object',
      { skip: backend.conditionalCreate ? false : 'this emulator ignores the create-only precondition (wal-push compares contents instead)' },
      async () => {
        await storage.put('create-only/taken', Readable.from([Buffer.from('first')]));
        await assert.rejects(storage.put('create-only/taken', Readable.from([Buffer.from('second')]), { createOnly: true }), AlreadyExistsError);
        const large = randomBytes(20 << 20); // parted upload: the condition is checked at completion
        await assert.rejects(storage.put('create-only/taken', Readable.from([large]), { createOnly: true }), AlreadyExistsError);
        assert.equal((await readAll((await storage.get('create-only/taken')).body)).toString(), 'first');
      },
    );

    test('head and get of a missing object: undefined and NotFoundError', async () => {
      assert.equal(await storage.head('missing/object'), undefined);
      await assert.rejects(storage.get('missing/object'), NotFoundError);
    });

    test('list pages through more than 1000 keys in key order, only under the prefix', async () => {
      const keys = Array.from({ length: 1005 }, (_, index) => `listing/wal_005/${String(index).padStart(24, '0')}`);
      await forEachConcurrently(keys, 16, (key) => storage.put(key, Readable.from([Buffer.from(key)])));
      await storage.put('listing-sibling/not-listed', Readable.from([Buffer.from('x')]));
      const listed = await collect(storage.list('listing/'));
      assert.deepEqual(listed.map((item) => item.key), keys);
      assert.ok(listed.every((item) => item.size === keys[0]!.length));
      assert.deepEqual((await collect(storage.list('listing/wal_005/00000000000000000000100'))).map((item) => item.key), keys.slice(1000, 1005));
    });

    test('declares what it does: a listing carries metadata exactly where the backend says so', async () => {
      assert.equal(storage.capabilities.localFileSystem, backend.name === 'file');
      assert.equal(storage.capabilities.batchDelete, /^(s3|azure)/.test(backend.name) ? 'batched' : 'parallel');
      const metadata = { [METADATA_SIZE]: '4' };
      await storage.put('listed-metadata/object', Readable.from([Buffer.from('wal!')]), { metadata });
      const [listed] = await collect(storage.list('listed-metadata/'));
      assert.deepEqual(listed?.metadata, storage.capabilities.listingIncludesMetadata ? metadata : undefined);
    });

    test('delete removes an object; deleting a missing one is not an error', async () => {
      await storage.put('delete/object', Readable.from([Buffer.from('x')]), { metadata: { [METADATA_SIZE]: '1' } });
      await storage.delete('delete/object');
      assert.equal(await storage.head('delete/object'), undefined);
      await storage.delete('delete/object');
    });

    test('deleteMany removes more keys than one batch request takes, metadata and all; missing keys are no error', async () => {
      const keys = Array.from({ length: 1010 }, (_, index) => `delete-many/wal_005/${String(index).padStart(24, '0')}`);
      await forEachConcurrently(keys, 16, (key) => storage.put(key, Readable.from([Buffer.from(key)]), { metadata: { [METADATA_SIZE]: String(key.length) } }));
      await storage.put('delete-many-sibling/kept', Readable.from([Buffer.from('x')]));
      await storage.deleteMany([...keys, 'delete-many/never-stored']);
      assert.deepEqual(await collect(storage.list('delete-many/')), []);
      assert.equal(await storage.head(keys[0]!), undefined);
      assert.ok(await storage.head('delete-many-sibling/kept'));
      // The metadata went with its object: a new object under the key has none.
      await storage.put(keys[0]!, Readable.from([Buffer.from('new')]));
      assert.deepEqual((await storage.head(keys[0]!))?.metadata, {});
      await storage.deleteMany(keys.slice(0, 3));
      await storage.deleteMany([]);
    });

    test('keys outside the prefix cannot be addressed', async () => {
      await assert.rejects(storage.put('../escape', Readable.from([])), /invalid storage key/);
      await assert.rejects(storage.head('a//b'), /invalid storage key/);
    });
  });
}

describe('storage errors that are not absence', () => {
  const emulators: Emulator[] = [];
  after(async () => Promise.all(emulators.map((emulator) => emulator.stop())));

  for (const kind of ['s3', 'azure'] as const) {
    test(`${kind}: a missing bucket is a clear error, never NotFoundError`, async () => {
      const emulator = await startEmulator[kind]();
      emulators.push(emulator);
      const settings = emulator.settings('archive');
      const prefixSetting = Object.keys(settings).find((name) => name.endsWith('_PREFIX'))!;
      settings[prefixSetting] = settings[prefixSetting]!.replace('walship-test', 'no-such-bucket');
      const storage = await openConfigured(new Config(settings));
      const error = await storage.get('wal_005/000000010000000000000001.zst').then(() => undefined, (caught: unknown) => caught);
      assert.ok(error instanceof WalshipError && !(error instanceof NotFoundError), `expected a storage error, got ${String(error)}`);
      assert.match(error.message, /no-such-bucket/);
      assert.match(error.message, /NoSuchBucket|ContainerNotFound/);
      assert.doesNotMatch(error.message, /\n/);
    });
  }
});
