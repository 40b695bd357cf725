/**
 * The built binary against storage that misbehaves: a fault-injecting proxy
 * sits between walship and an emulator (s3rver, azurite, the GCS emulator). Transient faults
 * are retried through, a stall times out instead of hanging, persistent
 * faults make wal-push exit 1, and wal-fetch never calls an error "not found".
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../../src/errors.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { FaultProxy, SLOW_DOWN } from '../support/fault-proxy.ts';
import { walshipBinary } from '../support/paths.ts';
import { run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

/** Quick retries so the persistent-fault cases finish in seconds. */
const RETRY_SETTINGS = { WALG_STORAGE_MAX_ATTEMPTS: '4', WALG_STORAGE_REQUEST_TIMEOUT: '2', WALG_STORAGE_RETRY_TIME_LIMIT: '30' };

/** Which requests upload, look up and download an object, by service. */
const requests = {
  s3: { upload: { method: 'PUT' }, lookup: { method: 'HEAD' }, download: { method: 'GET' } },
  azure: { upload: { method: 'PUT' }, lookup: { method: 'HEAD' }, download: { method: 'GET' } },
  gcs: { upload: { method: 'POST' }, lookup: { method: 'GET', url: /^\/storage\// }, download: { method: 'GET', url: /alt=media/ } },
};

for (const kind of ['s3', 'azure', 'gcs'] as const) {
  const { upload, lookup, download } = requests[kind];
  describe(`${kind} through a faulty network`, () => {
    let emulator: Emulator;
    let proxy: FaultProxy;
    let root: string;
    let dataDir: string;
    let settings: Record<string, string>;
    let segmentNumber = 0;

    before(async () => {
      emulator = await startEmulator[kind]();
      proxy = await FaultProxy.start(emulator.port);
      root = mkdtempSync(join(tmpdir(), 'walship-faults-'));
      dataDir = join(root, 'data');
      // With archive_status/, as in a real pg_wal, the archive's identity is checked once and then cached in the spool.
      mkdirSync(join(dataDir, 'pg_wal', 'archive_status'), { recursive: true });
      settings = emulator.settings('faults', proxy.url);
      // The first push records the archive's identity, so the faults below hit the segments' own requests.
      const { name } = writeSegment(1 << 10);
      const first = await walship(['wal-push', `pg_wal/${name}`]);
      assert.equal(first.code, ExitCode.ok, first.stderr);
    });
    after(async () => {
      await proxy?.stop();
      await emulator?.stop();
      rmSync(root, { recursive: true, force: true });
    });

    const walship = (args: string[], extra: Record<string, string> = {}) =>
      run(walshipBinary, args, {
        cwd: dataDir,
        env: { PATH: process.env.PATH, WALSHIP_PREFETCH: 'false', WALG_LOG_LEVEL: 'NORMAL', ...settings, ...RETRY_SETTINGS, ...extra },
      });

    /** A new segment of incompressible content: 20 MiB goes up in several parts. */
    function writeSegment(size = 20 << 20): { name: string; content: Buffer } {
      const name = `0000000100000000000000${(++segmentNumber).toString(16).toUpperCase().padStart(2, '0')}`;
      const content = asWalSegment(randomBytes(size));
      writeFileSync(join(dataDir, 'pg_wal', name), content);
      return { name, content };
    }

    async function fetchAndCompare(name: string, content: Buffer, extra: Record<string, string> = {}): Promise<void> {
      const fetched = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], extra);
      assert.equal(fetched.code, ExitCode.ok, fetched.stderr);
      assert.ok(readFileSync(join(dataDir, 'pg_wal/RECOVERYXLOG')).equals(content), 'fetched content differs');
    }

    test('wal-push and wal-fetch succeed through 500s, 503 SlowDown and connection resets', async () => {
      // No stalls here: a request timeout long enough for a 20 MiB upload on a loaded machine.
      const patient = { WALG_STORAGE_REQUEST_TIMEOUT: '20' };
      const { name, content } = writeSegment();
      proxy.inject(
        { fault: { kind: 'status', status: 500 }, ...lookup, times: 1 },
        { fault: { kind: 'status', status: 500 }, ...upload, times: 1 },
        { fault: SLOW_DOWN, ...upload, times: 1 },
        { fault: { kind: 'reset' }, ...upload, times: 1 },
      );
      const pushed = await walship(['wal-push', `pg_wal/${name}`], patient);
      assert.equal(pushed.code, ExitCode.ok, pushed.stderr);
      assert.equal(proxy.seen.faults, 4);
      assert.match(pushed.stderr, /retrying after a transient storage error/);

      proxy.inject(
        { fault: { kind: 'reset' }, ...download, times: 1 },
        { fault: SLOW_DOWN, ...download, times: 1 },
        { fault: { kind: 'status', status: 503 }, ...download, times: 1 },
      );
      await fetchAndCompare(name, content, patient);
      assert.equal(proxy.seen.faults, 3);
    });

    test('a stalled request or response body times out and is retried instead of hanging', async () => {
      const { name, content } = writeSegment(1 << 20);
      proxy.inject({ fault: { kind: 'stall' }, ...upload, times: 1 });
      const started = Date.now();
      const pushed = await walship(['wal-push', `pg_wal/${name}`], { WALG_STORAGE_REQUEST_TIMEOUT: '1' });
      assert.equal(pushed.code, ExitCode.ok, pushed.stderr);
      assert.equal(proxy.seen.faults, 1);
      assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);

      proxy.inject({ fault: { kind: 'stall' }, ...download, times: 1 }, { fault: { kind: 'stall-mid-body' }, ...download, times: 1 });
      const fetchStarted = Date.now();
      const fetched = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], { WALG_STORAGE_REQUEST_TIMEOUT: '1' });
      assert.equal(fetched.code, ExitCode.ok, fetched.stderr);
      assert.ok(readFileSync(join(dataDir, 'pg_wal/RECOVERYXLOG')).equals(content), 'fetched content differs');
      assert.equal(proxy.seen.faults, 2);
      assert.match(fetched.stderr, /resuming a broken download/);
      assert.ok(Date.now() - fetchStarted < 15_000, `took ${Date.now() - fetchStarted} ms`);
    });

    test('a download broken mid-body resumes from the byte reached', async () => {
      const { name, content } = writeSegment(4 << 20);
      assert.equal((await walship(['wal-push', `pg_wal/${name}`])).code, ExitCode.ok);
      proxy.inject({ fault: { kind: 'reset-mid-body' }, ...download, times: 2 });
      await fetchAndCompare(name, content);
      assert.equal(proxy.seen.faults, 2);
    });

    for (const [label, fault] of [
      ['503 on every request', { kind: 'status', status: 503 }],
      ['every connection reset', { kind: 'reset' }],
      ['every request stalled', { kind: 'stall' }],
    ] as const) {
      test(`persistent faults (${label}): wal-push exits 1 and wal-fetch never exits 74, in bounded time`, async () => {
        const { name } = writeSegment(1 << 20);
        proxy.inject({ fault });
        const started = Date.now();
        const quickGiveUp = { WALG_STORAGE_REQUEST_TIMEOUT: '1', WALG_STORAGE_MAX_ATTEMPTS: '2' };
        const pushed = await walship(['wal-push', `pg_wal/${name}`], quickGiveUp);
        assert.equal(pushed.code, ExitCode.failure, pushed.stderr);
        const errors = pushed.stderr.split('\n').filter((line) => line.includes('ERROR'));
        assert.equal(errors.length, 1, pushed.stderr);
        assert.match(errors[0]!, /gave up after retries/);

        const fetched = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], quickGiveUp);
        assert.notEqual(fetched.code, ExitCode.notFound, fetched.stderr);
        assert.notEqual(fetched.code, ExitCode.ok, fetched.stderr);
        assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
        proxy.clear();
      });
    }

    test('bad credentials fail at once, in one line that shows no secret', { skip: kind === 'gcs' ? 'the GCS emulator does not check credentials' : false }, async () => {
      const { name } = writeSegment(1 << 10);
      const secret = `wrong-${randomBytes(8).toString('hex')}`;
      // s3rver checks the key id (not SigV4 signatures); azurite checks the signature.
      const badCredentials: Record<string, string> = kind === 's3'
        ? { AWS_ACCESS_KEY_ID: 'NOT-A-KNOWN-KEY', AWS_SECRET_ACCESS_KEY: secret }
        : { AZURE_STORAGE_ACCESS_KEY: Buffer.from(secret).toString('base64') };
      proxy.clear();
      const started = Date.now();
      const pushed = await walship(['wal-push', `pg_wal/${name}`], badCredentials);
      assert.equal(pushed.code, ExitCode.failure, pushed.stderr);
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
      assert.doesNotMatch(pushed.stderr, /retrying/);
      assert.equal(pushed.stderr.trim().split('\n').length, 1, pushed.stderr);
      assert.match(pushed.stderr, /HTTP 403/);
      for (const hidden of [secret, Buffer.from(secret).toString('base64')]) assert.ok(!pushed.stderr.includes(hidden));
    });
  });
}
