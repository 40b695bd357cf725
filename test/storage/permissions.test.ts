/**
 * The built binary against credentials that lack a permission. A refusal
 * names the permission to grant, and wal-fetch exits 74 only for a file that
 * is truly absent. S3 and GCS answer 403 instead of 404 for a missing object
 * to callers that may not list the bucket; s3rver and the GCS emulator check
 * no permissions, so a proxy answers the refusals as the services do. Azurite
 * checks SAS tokens itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  ContainerSASPermissions,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { ExitCode } from '../../src/errors.ts';
import { AZURITE_ACCOUNT, AZURITE_KEY, EMULATOR_BUCKET, type Emulator, startEmulator } from '../support/emulators.ts';
import { type Fault, FaultProxy, type FaultRule } from '../support/fault-proxy.ts';
import { walshipBinary } from '../support/paths.ts';
import { run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

const PREFIX = 'permissions';
const QUICK_RETRIES = { WALG_STORAGE_MAX_ATTEMPTS: '2', WALG_STORAGE_REQUEST_TIMEOUT: '5', WALG_STORAGE_RETRY_TIME_LIMIT: '10' };

/** A GCS JSON error body for a refused permission, as the service words it. */
function gcsRefusal(permission: string): Fault {
  const message = `walship@example.iam.gserviceaccount.com does not have ${permission} access to the Google Cloud Storage object. Permission '${permission}' denied on resource (or it may not exist).`;
  return { kind: 'status', status: 403, json: { error: { code: 403, message, errors: [{ message, domain: 'global', reason: 'forbidden' }] } } };
}

const ACCESS_DENIED: Fault = { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' };

/** How each service's requests look on the wire, what it refuses them with, and the permission names to expect. */
const services = {
  s3: {
    /** GET and HEAD of one WAL object (path style); a listing is GET /bucket?list-type=2. */
    reads: (name: string): FaultRule[] =>
      ['GET', 'HEAD'].map((method) => ({ method, url: new RegExp(`^/${EMULATOR_BUCKET}/${PREFIX}/wal_005/${name}`), fault: ACCESS_DENIED })),
    listing: { method: 'GET', url: /[?&]list-type=2/ },
    upload: { method: 'PUT' },
    readRefusal: ACCESS_DENIED,
    listRefusal: ACCESS_DENIED,
    writeRefusal: ACCESS_DENIED,
    listPermission: /grant s3:ListBucket/,
    readPermission: /the object exists; grant s3:GetObject/,
    writePermission: /; grant s3:PutObject/,
  },
  gcs: {
    /** The metadata request and the download both address the object: /o/<name with %2F>. */
    reads: (name: string): FaultRule[] => [{ method: 'GET', url: new RegExp(`/o/${PREFIX}%2Fwal_005%2F${name}`), fault: gcsRefusal('storage.objects.get') }],
    listing: { method: 'GET', url: /\/o\?/ },
    upload: { method: 'POST', url: /^\/upload\// },
    readRefusal: gcsRefusal('storage.objects.get'),
    listRefusal: gcsRefusal('storage.objects.list'),
    writeRefusal: gcsRefusal('storage.objects.create'),
    listPermission: /grant storage\.objects\.list/,
    readPermission: /the object exists; grant storage\.objects\.get/,
    writePermission: /; grant storage\.objects\.create/,
  },
};

/** A data directory with pg_wal/, and walship runs in it with `settings`. */
function walshipIn(dataDir: string, settings: () => Record<string, string>) {
  let segmentNumber = 0;
  return {
    run: (args: string[], extra: Record<string, string> = {}) =>
      run(walshipBinary, args, {
        cwd: dataDir,
        env: { PATH: process.env.PATH, WALSHIP_PREFETCH: 'false', WALG_LOG_LEVEL: 'NORMAL', ...settings(), ...QUICK_RETRIES, ...extra },
      }),
    /** A new segment name; with `content`, the file is written to pg_wal/. */
    segment(withContent = true): { name: string; content: Buffer } {
      const name = `0000000100000000000000${(++segmentNumber).toString(16).toUpperCase().padStart(2, '0')}`;
      const content = asWalSegment(randomBytes(64 << 10));
      if (withContent) writeFileSync(join(dataDir, 'pg_wal', name), content);
      return { name, content };
    },
  };
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.includes('ERROR'));
}

function makeDataDirectory(): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'walship-permissions-'));
  mkdirSync(join(dataDir, 'pg_wal'));
  return dataDir;
}

for (const kind of ['s3', 'gcs'] as const) {
  const service = services[kind];
  describe(`${kind}: refused requests`, () => {
    let emulator: Emulator;
    let proxy: FaultProxy;
    let dataDir: string;
    let walship: ReturnType<typeof walshipIn>;

    before(async () => {
      emulator = await startEmulator[kind]();
      proxy = await FaultProxy.start(emulator.port);
      dataDir = makeDataDirectory();
      walship = walshipIn(dataDir, () => emulator.settings(PREFIX, proxy.url));
      // The archive holds WAL, so "not in the archive" is a possible answer.
      const first = walship.segment();
      assert.equal((await walship.run(['wal-push', `pg_wal/${first.name}`])).code, ExitCode.ok);
    });
    after(async () => {
      await proxy?.stop();
      await emulator?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('a missing segment whose listing is refused too is an error naming the list permission, never "not found"', async () => {
      const { name } = walship.segment(false);
      proxy.inject(...service.reads(name), { ...service.listing, fault: service.listRefusal });
      const started = Date.now();
      const fetched = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
      assert.equal(fetched.code, ExitCode.fatalRecoveryError, fetched.stderr);
      const errors = errorLines(fetched.stderr);
      assert.equal(errors.length, 1, fetched.stderr);
      assert.match(errors[0]!, service.listPermission);
      assert.match(errors[0]!, /cannot tell a missing object from a forbidden one/);
      assert.doesNotMatch(fetched.stderr, /retrying/);
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    });

    test('a missing segment whose listing is allowed is "not in the archive" (74)', async () => {
      const { name } = walship.segment(false);
      proxy.inject(...service.reads(name));
      const fetched = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
      assert.equal(fetched.code, ExitCode.notFound, fetched.stderr);
      assert.ok(proxy.seen.faults >= 1, 'no read was refused');
    });

    test('a stored segment whose read is refused is an error naming the read permission', async () => {
      const { name } = walship.segment();
      assert.equal((await walship.run(['wal-push', `pg_wal/${name}`])).code, ExitCode.ok);
      proxy.inject(...service.reads(name));
      const fetched = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
      assert.equal(fetched.code, ExitCode.fatalRecoveryError, fetched.stderr);
      const errors = errorLines(fetched.stderr);
      assert.equal(errors.length, 1, fetched.stderr);
      assert.match(errors[0]!, service.readPermission);
      // On a standby the same refusal is "try again later".
      writeFileSync(join(dataDir, 'standby.signal'), '');
      try {
        assert.equal((await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'])).code, ExitCode.failure);
      } finally {
        rmSync(join(dataDir, 'standby.signal'));
      }
    });

    test('wal-push goes on when its existence checks are refused but the listing shows the name free', async () => {
      const { name, content } = walship.segment();
      proxy.inject(...service.reads(name));
      const pushed = await walship.run(['wal-push', `pg_wal/${name}`]);
      assert.equal(pushed.code, ExitCode.ok, pushed.stderr);
      assert.ok(proxy.seen.faults >= 1, 'no existence check was refused');
      proxy.clear();
      assert.equal((await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'])).code, ExitCode.ok);
      assert.ok(readFileSync(join(dataDir, 'pg_wal/RECOVERYXLOG')).equals(content));
    });

    test('wal-push of a new file whose lookup and listing are refused exits 1 naming the list permission', async () => {
      const { name } = walship.segment();
      proxy.inject(...service.reads(name), { ...service.listing, fault: service.listRefusal });
      const pushed = await walship.run(['wal-push', `pg_wal/${name}`]);
      assert.equal(pushed.code, ExitCode.failure, pushed.stderr);
      const errors = errorLines(pushed.stderr);
      assert.equal(errors.length, 1, pushed.stderr);
      assert.match(errors[0]!, service.listPermission);
    });

    test('a refused upload or listing names the permission to grant', async () => {
      const { name } = walship.segment();
      proxy.inject({ ...service.upload, fault: service.writeRefusal });
      const pushed = await walship.run(['wal-push', `pg_wal/${name}`]);
      assert.equal(pushed.code, ExitCode.failure, pushed.stderr);
      assert.equal(errorLines(pushed.stderr).length, 1, pushed.stderr);
      assert.match(pushed.stderr, service.writePermission);

      proxy.inject({ ...service.listing, fault: service.listRefusal });
      const listed = await walship.run(['backup-list']);
      assert.equal(listed.code, ExitCode.failure, listed.stderr);
      assert.match(listed.stderr, service.listPermission);
    });

    if (kind === 's3') {
      test('a refusal that names the action (an SSE-KMS key the credentials may not use) names that action', async () => {
        const { name } = walship.segment();
        assert.equal((await walship.run(['wal-push', `pg_wal/${name}`])).code, ExitCode.ok);
        const kmsRefusal: Fault = {
          kind: 'status',
          status: 403,
          code: 'AccessDenied',
          message: 'User: arn:aws:iam::123456789012:user/walship is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext',
        };
        proxy.inject({ method: 'GET', url: new RegExp(`^/${EMULATOR_BUCKET}/${PREFIX}/wal_005/${name}`), fault: kmsRefusal });
        const fetched = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
        assert.equal(fetched.code, ExitCode.fatalRecoveryError, fetched.stderr);
        assert.match(fetched.stderr, /the object exists; grant kms:Decrypt$/m);
      });
    }
  });
}

describe('azure: SAS tokens without a permission (Azurite checks them)', () => {
  let emulator: Emulator;
  let dataDir: string;
  let walship: ReturnType<typeof walshipIn>;
  const accountKey = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  const expiresOn = new Date(Date.now() + 3_600_000);
  const containerSas = (permissions: string) =>
    generateBlobSASQueryParameters({ containerName: EMULATOR_BUCKET, permissions: ContainerSASPermissions.parse(permissions), expiresOn }, accountKey).toString();
  const accountSas = (permissions: string, resourceTypes: string) =>
    generateAccountSASQueryParameters(
      { services: AccountSASServices.parse('b').toString(), resourceTypes: AccountSASResourceTypes.parse(resourceTypes).toString(), permissions: AccountSASPermissions.parse(permissions), expiresOn },
      accountKey,
    ).toString();
  let sasToken = containerSas('racwdl');

  /** The account key's settings, with `sasToken` in its place. */
  function sasSettings(): Record<string, string> {
    const settings = emulator.settings(PREFIX);
    delete settings.AZURE_STORAGE_ACCESS_KEY;
    return { ...settings, AZURE_STORAGE_SAS_TOKEN: sasToken };
  }

  before(async () => {
    emulator = await startEmulator.azure();
    dataDir = makeDataDirectory();
    walship = walshipIn(dataDir, sasSettings);
  });
  after(async () => {
    await emulator?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a missing segment needs the list permission to be "not in the archive"', async () => {
    const stored = walship.segment();
    assert.equal((await walship.run(['wal-push', `pg_wal/${stored.name}`])).code, ExitCode.ok);
    const { name } = walship.segment(false);

    sasToken = containerSas('r');
    const refused = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
    assert.equal(refused.code, ExitCode.fatalRecoveryError, refused.stderr);
    assert.equal(errorLines(refused.stderr).length, 1, refused.stderr);
    assert.match(refused.stderr, /grant l \(list\) in the SAS token's permissions \(sp=\)/);

    sasToken = containerSas('rl');
    const missing = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
    assert.equal(missing.code, ExitCode.notFound, missing.stderr);
  });

  test('wal-push with a read-only SAS exits 1 naming the write permission', async () => {
    const { name } = walship.segment();
    sasToken = containerSas('rl');
    const pushed = await walship.run(['wal-push', `pg_wal/${name}`]);
    assert.equal(pushed.code, ExitCode.failure, pushed.stderr);
    assert.equal(errorLines(pushed.stderr).length, 1, pushed.stderr);
    assert.match(pushed.stderr, /grant w \(write\) in the SAS token's permissions \(sp=\)/);
  });

  test('an account SAS without the container resource type names srt=', async () => {
    const { name } = walship.segment(false);
    sasToken = accountSas('rwdl', 'o');
    const refused = await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
    assert.equal(refused.code, ExitCode.fatalRecoveryError, refused.stderr);
    assert.match(refused.stderr, /grant c \(container\) in the account SAS's resource types \(srt=\)/);

    sasToken = accountSas('rwdl', 'co');
    assert.equal((await walship.run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'])).code, ExitCode.notFound);
  });
});
