/**
 * A create-only put sends the service's create-only precondition on the
 * request that creates the object: S3 If-None-Match: * (on PUT and on
 * multipart completion), Azure If-None-Match: * (on PUT and on the block list
 * commit), GCS ifGenerationMatch=0. s3rver and the GCS emulator ignore these
 * preconditions, so this is checked on the wire, through a recording proxy;
 * azurite enforces them (see the contract suite). Uploads also carry the
 * hash the service checks on arrival: a CRC32 on S3, an MD5 on Azure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { openConfigured } from '../support/storage.ts';

type Recorded = FaultProxy['recorded'][number];

const services = {
  s3: {
    /** PutObject, or CompleteMultipartUpload (POST ?uploadId=); not UploadPart. */
    createsObject: (request: Recorded) =>
      (request.method === 'PUT' && !/[?&]partNumber=/.test(request.url)) || (request.method === 'POST' && /[?&]uploadId=/.test(request.url)),
    carriesCreateOnly: (request: Recorded) => request.headers['if-none-match'] === '*',
    /** Requests that carry object bytes, and the hash S3 checks on them. */
    sendsBytes: (request: Recorded) => request.method === 'PUT',
    carriesHash: (request: Recorded) => typeof request.headers['x-amz-checksum-crc32'] === 'string',
    largeObject: 20 << 20,
  },
  azure: {
    /** Put Blob, or Put Block List (comp=blocklist); not Put Block (comp=block). */
    createsObject: (request: Recorded) => request.method === 'PUT' && !/[?&]comp=block(&|$)/.test(request.url),
    carriesCreateOnly: (request: Recorded) => request.headers['if-none-match'] === '*',
    sendsBytes: (request: Recorded) => request.method === 'PUT' && !/[?&]comp=blocklist/.test(request.url),
    carriesHash: (request: Recorded) => typeof request.headers['content-md5'] === 'string',
    largeObject: 20 << 20,
  },
  gcs: {
    /** Single-request and resumable uploads both start with a POST to /upload/. */
    createsObject: (request: Recorded) => request.method === 'POST' && request.url.startsWith('/upload/'),
    carriesCreateOnly: (request: Recorded) => new URL(request.url, 'http://proxy').searchParams.get('ifGenerationMatch') === '0',
    // The GCS library checks the stored object's CRC32C after the upload instead.
    sendsBytes: undefined,
    carriesHash: undefined,
    largeObject: 40 << 20,
  },
};

for (const [kind, service] of Object.entries(services) as [keyof typeof services, (typeof services)[keyof typeof services]][]) {
  describe(`${kind}: preconditions and upload hashes on the wire`, () => {
    let emulator: Emulator;
    let proxy: FaultProxy;
    let storage: Storage;

    before(async () => {
      emulator = await startEmulator[kind]();
      proxy = await FaultProxy.start(emulator.port);
      storage = await openConfigured(new Config(emulator.settings('preconditions', proxy.url)));
    });
    after(async () => {
      await proxy?.stop();
      await emulator?.stop();
    });

    for (const [label, size] of [['one request', 1024], ['a parted upload', service.largeObject]] as const) {
      test(`a create-only put in ${label} sends the precondition; a plain put does not`, async () => {
        proxy.clear();
        await storage.put(`create-only-${size}`, Readable.from([randomBytes(size)]), { createOnly: true });
        const creating = proxy.recorded.filter(service.createsObject);
        assert.ok(creating.length > 0, `no creating request among ${proxy.recorded.map((request) => `${request.method} ${request.url}`).join(', ')}`);
        assert.ok(creating.every(service.carriesCreateOnly), JSON.stringify(creating));

        proxy.clear();
        await storage.put(`plain-${size}`, Readable.from([randomBytes(size)]));
        assert.ok(!proxy.recorded.filter(service.createsObject).some(service.carriesCreateOnly));
      });
    }

    test('every request with object bytes carries the hash the service checks', { skip: service.sendsBytes ? false : 'not sent by this library' }, async () => {
      proxy.clear();
      await storage.put('hashed', Readable.from([randomBytes(service.largeObject)]));
      const sending = proxy.recorded.filter(service.sendsBytes!);
      assert.ok(sending.length > 1, 'expected a parted upload');
      assert.ok(sending.every(service.carriesHash!), JSON.stringify(sending.map((request) => request.headers)));
    });
  });
}
