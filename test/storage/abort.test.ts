/**
 * A request that times out really stops: the client closes its connection,
 * so a stalled request neither holds a socket for the life of the process
 * (the look-ahead pusher, the prefetcher) nor lands late (an upload). Each
 * backend runs in this process behind a fault-injecting proxy that stalls
 * one request, and the proxy reports when the client gave up on it.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { type Fault, FaultProxy, type FaultRule } from '../support/fault-proxy.ts';
import { openConfigured } from '../support/storage.ts';

/** Each operation's first request, by service. */
type Requests = Record<'put' | 'head' | 'list' | 'delete' | 'download', Omit<FaultRule, 'fault'>>;
const requests: Record<'s3' | 'azure' | 'gcs', Requests> = {
  s3: { put: { method: 'PUT' }, head: { method: 'HEAD' }, list: { method: 'GET', url: /list-type=2/ }, delete: { method: 'DELETE' }, download: { method: 'GET' } },
  azure: { put: { method: 'PUT' }, head: { method: 'HEAD' }, list: { method: 'GET', url: /comp=list/ }, delete: { method: 'DELETE' }, download: { method: 'GET' } },
  gcs: {
    put: { method: 'POST', url: /^\/upload\// },
    head: { method: 'GET', url: /^\/storage\/v1\/b\/[^/]+\/o\/./ },
    list: { method: 'GET', url: /^\/storage\/v1\/b\/[^/]+\/o\?/ },
    delete: { method: 'DELETE' },
    download: { method: 'GET', url: /alt=media/ },
  },
};

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

for (const kind of ['s3', 'azure', 'gcs'] as const) {
  describe(`${kind}: a timed-out request stops`, () => {
    let emulator: Emulator;
    let proxy: FaultProxy;
    let storage: Storage;

    before(async () => {
      emulator = await startEmulator[kind]();
      proxy = await FaultProxy.start(emulator.port);
      storage = await openConfigured(new Config({ ...emulator.settings('abort', proxy.url), WALG_STORAGE_REQUEST_TIMEOUT: '1', WALG_STORAGE_MAX_ATTEMPTS: '3' }));
      await storage.put('abort/object', Readable.from([Buffer.alloc(256 << 10, 7)]));
    });
    after(async () => {
      await proxy?.stop();
      await emulator?.stop();
    });

    /** Stalls the first request `rule` matches, runs `operation` (which must succeed on a retry), and waits for the client to give up on the stalled one. */
    async function stalled(rule: Omit<FaultRule, 'fault'>, operation: () => Promise<unknown>, fault: Fault = { kind: 'stall' }): Promise<void> {
      proxy.inject({ fault, ...rule, times: 1 });
      await operation();
      assert.equal(proxy.seen.faults, 1, 'the stall was injected');
      const deadline = Date.now() + 3_000;
      while (proxy.seen.stallsAbandoned < 1) {
        assert.ok(Date.now() < deadline, 'the stalled request is still open: the timed-out attempt was not stopped');
        await sleep(20);
      }
    }

    const { put, head, list, delete: remove, download } = requests[kind];
    test('a put', () => stalled(put, () => storage.put('abort/put', Readable.from([Buffer.from('small')]))));
    test('a head', () => stalled(head, async () => assert.ok(await storage.head('abort/object'))));
    test('a list', () => stalled(list, async () => {
      for await (const _ of storage.list('abort/')) void _;
    }));
    test('a delete', () => stalled(remove, () => storage.delete('abort/put')));
    test('a download that never answers', () => stalled(download, async () => assert.equal((await readAll((await storage.get('abort/object')).body)).length, 256 << 10)));
    test('a download that stalls midway', () =>
      stalled(download, async () => assert.equal((await readAll((await storage.get('abort/object')).body)).length, 256 << 10), { kind: 'stall-mid-body' }));
  });
}
