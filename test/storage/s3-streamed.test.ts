// S3 uploads of bytes whose size and checksum are known (a copy relaying the
// CRC-32 file storage recorded, or a sentinel's SHA-256), over HTTPS as real
// S3 is reached: one streamed PUT with an unsigned payload that carries that
// checksum, sent again from a reopened source on a retry, never completed
// when the body fails at its end; over plain HTTP, the same put is signed
// with the payload's SHA-256.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { IntegrityError } from '../../src/errors.ts';
import type { KnownBody, Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { FaultProxy, SLOW_DOWN } from '../support/fault-proxy.ts';
import { openConfigured } from '../support/storage.ts';
import { startTlsProxy, type TlsProxy } from '../support/tls-proxy.ts';

const SIZE = 20 << 20;
const data = randomBytes(SIZE);
const crcHex = crc32(data).toString(16).padStart(8, '0');

/** `bytes` in 1 MiB pieces, as a file is read. */
function pieces(bytes: Buffer): Readable {
  return Readable.from((function* () {
    for (let offset = 0; offset < bytes.length; offset += 1 << 20) yield bytes.subarray(offset, offset + (1 << 20));
  })());
}

/** The bytes, counting how often they are opened again. */
function known(): KnownBody & { reopened: number } {
  const body = { size: SIZE, checksum: { algorithm: 'crc32' as const, hex: crcHex }, reopened: 0, reopen: async () => {
    body.reopened++;
    return pieces(data);
  } };
  return body;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('S3 puts of known bytes (s3rver behind TLS)', () => {
  let emulator: Emulator;
  let faults: FaultProxy;
  let tls: TlsProxy;
  let directory: string;
  let overTls: Storage;
  let overHttp: Storage;
  const puts = () => faults.recorded.filter((request) => request.method === 'PUT' || request.method === 'POST');

  before(async () => {
    emulator = await startEmulator.s3();
    faults = await FaultProxy.start(emulator.port);
    directory = mkdtempSync(join(tmpdir(), 'walship-s3-tls-'));
    tls = await startTlsProxy(directory, faults.port);
    overTls = await openConfigured(new Config({ ...emulator.settings('streamed', `https://127.0.0.1:${tls.port}`), WALG_S3_CA_CERT_FILE: tls.certificate, WALG_STORAGE_MAX_ATTEMPTS: '3' }));
    overHttp = await openConfigured(new Config(emulator.settings('signed', faults.url)));
  });
  after(async () => {
    await tls?.stop();
    await faults?.stop();
    await emulator?.stop();
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  test('over HTTPS: one PUT of the whole object, its payload unsigned, carrying the CRC32; it reads back whole', async () => {
    faults.clear();
    await overTls.put('one/object', pieces(data), { known: known(), metadata: { kept: 'yes' }, createOnly: true });
    const sent = puts();
    assert.equal(sent.length, 1, JSON.stringify(sent.map((request) => `${request.method} ${request.url}`)));
    assert.equal(sent[0]!.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.equal(sent[0]!.headers['x-amz-checksum-crc32'], Buffer.from(crcHex, 'hex').toString('base64'));
    assert.equal(sent[0]!.bodyBytes, SIZE);
    const stored = await overTls.get('one/object');
    assert.deepEqual(stored.metadata, { kept: 'yes' });
    assert.ok((await readAll(stored.body)).equals(data));
  });

  test('bytes known by their SHA-256 (a sentinel records it): one PUT carrying the SHA-256 for S3 to check', async () => {
    faults.clear();
    const sha256 = createHash('sha256').update(data).digest();
    await overTls.put('sha256/object', pieces(data), { known: { ...known(), checksum: { algorithm: 'sha256', hex: sha256.toString('hex') } } });
    const sent = puts();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.headers['x-amz-checksum-sha256'], sha256.toString('base64'));
    assert.equal(sent[0]!.headers['x-amz-checksum-crc32'], undefined);
    assert.ok((await readAll((await overTls.get('sha256/object')).body)).equals(data));
  });

  test('a retried PUT sends the bytes again from a reopened source', async () => {
    faults.inject({ method: 'PUT', fault: SLOW_DOWN, times: 1 });
    const body = known();
    await overTls.put('retried/object', pieces(data), { known: body });
    assert.equal(body.reopened, 1);
    assert.equal(puts().length, 2);
    assert.ok((await readAll((await overTls.get('retried/object')).body)).equals(data));
  });

  test('a body that fails at its end fails the put with its error, and the request never gets all its bytes', async () => {
    faults.clear();
    const failing = Readable.from((async function* () {
      yield* pieces(data);
      throw new IntegrityError('the bytes are not what the source recorded');
    })());
    await assert.rejects(overTls.put('failed/object', failing, { known: known() }), IntegrityError);
    const [sent] = puts();
    assert.ok(sent && sent.bodyBytes < SIZE, `${sent?.bodyBytes} of ${SIZE} bytes reached the store`);
  });

  test('bytes of unknown size that fit in one part (a compressed segment): over HTTPS one PUT streamed from memory, unsigned, carrying their CRC32', async () => {
    faults.clear();
    const segment = data.subarray(0, 5 << 20);
    await overTls.put('held/object', pieces(segment), { createOnly: true });
    const sent = puts();
    assert.equal(sent.length, 1);
    // A payload sent whole would be signed with its SHA-256: streamed in pieces, TLS never holds it whole.
    assert.equal(sent[0]!.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.equal(sent[0]!.headers['x-amz-checksum-crc32'], Buffer.from(crc32(segment).toString(16).padStart(8, '0'), 'hex').toString('base64'));
    assert.equal(sent[0]!.bodyBytes, segment.length);
    assert.ok((await readAll((await overTls.get('held/object')).body)).equals(segment));
  });

  test('over plain HTTP, a put of known bytes is signed with the SHA-256 of each request', async () => {
    faults.clear();
    await overHttp.put('signed/object', pieces(data), { known: known() });
    const sent = puts();
    assert.ok(sent.length > 1, 'the parted way: more than one request');
    for (const request of sent) assert.match(String(request.headers['x-amz-content-sha256']), /^[0-9a-f]{64}$/);
    assert.ok((await readAll((await overHttp.get('signed/object')).body)).equals(data));
  });
});
