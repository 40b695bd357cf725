// An encrypted archive end to end, on file storage and on every cloud
// emulator: a real PostgreSQL 15 archives with a key, backup-push stores an
// encrypted backup, and backup-fetch with the key restores it to a point in
// time (the restored server's wal-fetch decrypting the WAL). Without the
// key, with another key, or with one byte flipped, wal-fetch and
// backup-fetch fail with one line saying so (never 74: "not found") and
// leave nothing where PostgreSQL or a user would read it; the key itself
// is never printed, even at DEVEL.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';
import { backupThenPassATarget, restoreToTarget } from '../support/scenarios.ts';
import { openConfigured } from '../support/storage.ts';

const KEY = randomBytes(32).toString('hex');
const OTHER_KEY = randomBytes(32).toString('hex');
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

const BACKENDS = [
  { kind: 'file', label: 'file storage' },
  { kind: 's3', label: 'S3 (s3rver)' },
  { kind: 'azure', label: 'Azure Blob (azurite)' },
  { kind: 'gcs', label: 'GCS (the Firebase emulator)' },
] as const;

for (const { kind, label } of BACKENDS) {
  describe(`an encrypted archive on ${label}`, () => {
    let emulator: Emulator | undefined;
    let workRoot: string;
    let primary: PostgresCluster;
    let restored: PostgresCluster | undefined;
    /** walship's settings: the storage, and the key (in a file on file storage, inline on the clouds). */
    let env: Record<string, string>;
    let storage: Storage;
    let lastArchived: string;

    const walship = (args: string[], overrides: Record<string, string | undefined> = {}, cwd?: string) =>
      run(walshipBinary, args, { asPostgres: true, cwd, env: { ...process.env, ...env, ...libpq(primary), ...overrides } });
    const withoutKey = { WALG_LIBSODIUM_KEY: undefined, WALG_LIBSODIUM_KEY_PATH: undefined, WALG_LIBSODIUM_KEY_TRANSFORM: undefined };
    const withOtherKey = { ...withoutKey, WALG_LIBSODIUM_KEY: OTHER_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' };

    before(async () => {
      workRoot = makePostgresOwnedDirectory(`walship-encrypted-${kind}-`);
      let storageSettings: Record<string, string>;
      let keySettings: Record<string, string>;
      if (kind === 'file') {
        const archive = join(workRoot, 'archive');
        mkdirSync(archive);
        giveToPostgres(archive);
        const keyPath = join(workRoot, 'libsodium.key');
        writeFileSync(keyPath, `${KEY}\n`);
        chmodSync(keyPath, 0o600);
        giveToPostgres(keyPath);
        storageSettings = { WALG_FILE_PREFIX: archive };
        keySettings = { WALG_LIBSODIUM_KEY_PATH: keyPath, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' };
      } else {
        emulator = await startEmulator[kind]();
        storageSettings = emulator.settings('encrypted');
        keySettings = { WALG_LIBSODIUM_KEY: KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' };
      }
      env = { ...storageSettings, ...keySettings, WALG_TAR_SIZE_THRESHOLD: String(4 << 20), PATH: `${postgresBin}:${process.env.PATH}` };
      storage = await openConfigured(new Config(env));
      primary = await PostgresCluster.init({ env, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p`, wal_keep_size: '1GB' } });
      await primary.start();
      await primary.pgbench(['-i', '-s', '1', '-q']);
    });

    after(async () => {
      await restored?.destroy();
      await primary?.destroy();
      await emulator?.stop();
      rmSync(workRoot, { recursive: true, force: true });
    });

    it('archives and backs up encrypted, and restores to a point in time with the key', async () => {
      const passed = await backupThenPassATarget((args) => walship(args, { WALG_LOG_LEVEL: 'DEVEL' }), primary);
      const { backup, pushed } = passed;
      lastArchived = passed.lastArchived;

      // Everything that holds data is encrypted and says so; what describes it stays plain JSON.
      const stored: string[] = [];
      for await (const object of storage.list('')) stored.push(object.key);
      const dataObjects = stored.filter((key) => key.startsWith('wal_005/') || key.includes('/tar_partitions/'));
      assert.ok(dataObjects.some((key) => key === `wal_005/${lastArchived}.zst`), stored.join(', '));
      assert.ok(dataObjects.filter((key) => key.includes('/tar_partitions/')).length >= 2);
      for (const key of dataObjects) {
        const head = await storage.head(key);
        assert.equal(head?.metadata.walship_encryption, 'libsodium', key);
        assert.match(head?.metadata.walship_key_id ?? '', /^[0-9a-f]{16}$/, key);
        assert.equal(head?.metadata.walship_crc32, undefined, `${key}: no checksum of the plain content`);
        const raw = await buffer((await storage.get(key)).body);
        assert.ok(!raw.subarray(0, 4).equals(ZSTD_MAGIC), `${key} is not a plain zstd frame`);
        assert.ok((raw.length - 24) % 8209 >= 17, `${key}: a header, whole chunks and a final one of 17 bytes or more`);
      }
      const sentinel = JSON.parse((await buffer((await storage.get(`basebackups_005/${backup.backup_name}_backup_stop_sentinel.json`)).body)).toString());
      assert.equal(sentinel.Encryption, 'libsodium');
      assert.equal(sentinel.EncryptionKeyId, (await storage.head(dataObjects[0]!))?.metadata.walship_key_id);

      const restoring = await restoreToTarget((args) => walship(args, { WALG_LOG_LEVEL: 'DEVEL' }), join(workRoot, 'restored'), workRoot, passed.target);
      restored = restoring.restored;
      const { fetched } = restoring;

      for (const output of [pushed.stdout, pushed.stderr, fetched.stdout, fetched.stderr, readFileSync(primary.logFile, 'utf8'), readFileSync(restored.logFile, 'utf8')]) {
        assert.ok(!output.includes(KEY), 'the key is never printed');
      }
    });

    it('without the key, with another key, or with a byte flipped: one line, exit 255 from wal-fetch (never 74), nothing left behind', async () => {
      const pgWal = join(workRoot, 'fetching', 'pg_wal');
      mkdirSync(pgWal, { recursive: true });
      giveToPostgres(join(workRoot, 'fetching'));
      giveToPostgres(pgWal);
      const fetchInto = (overrides: Record<string, string | undefined>) => walship(['wal-fetch', lastArchived, 'pg_wal/RECOVERYXLOG'], { WALSHIP_PREFETCH: 'false', WALG_LOG_LEVEL: 'DEVEL', ...overrides }, join(workRoot, 'fetching'));
      const assertRefused = (result: { code: number; stderr: string }, pattern: RegExp, what: string) => {
        assert.equal(result.code, 255, `${what}: ${result.stderr}`);
        assert.match(result.stderr, pattern, what);
        assert.equal(result.stderr.trim().split('\n').filter((line) => line.includes('ERROR')).length, 1, `${what}: one error line: ${result.stderr}`);
        assert.ok(!result.stderr.includes(KEY) && !result.stderr.includes(OTHER_KEY), `${what}: no key printed`);
        assert.ok(!existsSync(join(pgWal, 'RECOVERYXLOG')), `${what}: nothing restored`);
      };

      assertRefused(await fetchInto(withoutKey), new RegExp(`ERROR: wal_005/${lastArchived}\\.zst is encrypted \\(libsodium\\), but no key is configured: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH`), 'no key');
      assertRefused(await fetchInto(withOtherKey), /was encrypted with another key \(key id [0-9a-f]{16}\) than the configured one \(WALG_LIBSODIUM_KEY, key id [0-9a-f]{16}\): configure the key it was stored with/, 'another key');

      for (const [what, overrides, pattern] of [
        ['no key', withoutKey, /is encrypted \(libsodium\), but no key is configured/],
        ['another key', withOtherKey, /was encrypted with another key/],
      ] as const) {
        const destination = join(workRoot, `not-restored-${what.replace(' ', '-')}`);
        const result = await walship(['backup-fetch', destination, 'LATEST'], overrides);
        assert.equal(result.code, 1, `backup-fetch with ${what}: ${result.stderr}`);
        assert.match(result.stderr, pattern);
        assert.ok(!existsSync(destination), `backup-fetch with ${what} leaves no destination`);
        assert.ok(!result.stderr.includes(KEY));
      }

      // One flipped byte in the middle of the stored segment: its chunk fails authentication.
      const key = `wal_005/${lastArchived}.zst`;
      const head = (await storage.head(key))!;
      const raw = await buffer((await storage.get(key)).body);
      const flipped = Buffer.from(raw);
      const at = 24 + 8209 + 100;
      assert.ok(raw.length > at + 8209, `${key} holds at least three chunks (${raw.length} bytes)`);
      flipped[at]! ^= 0x40;
      // On file storage in place, so the object stays the postgres user's.
      const replace = (bytes: Buffer) => (kind === 'file' ? writeFileSync(join(env.WALG_FILE_PREFIX!, key), bytes) : storage.put(key, Readable.from([bytes]), { metadata: head.metadata }));
      await replace(flipped);
      assertRefused(await fetchInto({}), new RegExp(`ERROR: ${key.replaceAll('.', '\\.')} is corrupt: encrypted chunk 2 fails authentication`), 'a flipped byte');
      await replace(raw);
      const healed = await fetchInto({});
      assert.equal(healed.code, 0, healed.stderr);
      assert.ok(!healed.stderr.includes(KEY), 'not even at DEVEL');
    });

    it('a host without the key, or with another key, stores nothing: wal-push and backup-push refuse with one line', async () => {
      const history = join(workRoot, 'pg_wal-copy', '00000063.history');
      mkdirSync(join(workRoot, 'pg_wal-copy'), { recursive: true });
      writeFileSync(history, '1\t0/3000000\tno recovery target specified\n');
      giveToPostgres(join(workRoot, 'pg_wal-copy'));
      giveToPostgres(history);
      const segment = join(primary.dataDir, 'pg_wal', lastArchived);
      for (const [what, overrides, pattern] of [
        ['no key', withoutKey, /ERROR: the archive in .+ is encrypted \(libsodium, key id [0-9a-f]{16}, as walship\/archive\.json records\), but no key is configured here: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH .*; nothing was stored$/m],
        ['another key', withOtherKey, /ERROR: the archive in .+ is encrypted with another key \(key id [0-9a-f]{16}, as walship\/archive\.json records\) than the configured one \(WALG_LIBSODIUM_KEY, key id [0-9a-f]{16}\)/m],
      ] as const) {
        for (const args of [['wal-push', history], ['wal-push', segment], ['backup-push']]) {
          const result = await walship(args, { ...overrides, WALG_LOG_LEVEL: 'DEVEL' });
          assert.equal(result.code, 1, `${what}, ${args.join(' ')}: ${result.stderr}`);
          assert.match(result.stderr, pattern, `${what}, ${args.join(' ')}`);
          assert.equal(result.stderr.trim().split('\n').filter((line) => line.includes('ERROR')).length, 1, result.stderr);
          assert.ok(!result.stderr.includes(KEY) && !result.stderr.includes(OTHER_KEY), 'no key printed');
        }
      }
      const stored: string[] = [];
      for await (const object of storage.list('')) stored.push(object.key);
      assert.ok(!stored.some((key) => key.startsWith('wal_005/00000063.history')), 'no plaintext history file');
      const pushed = await walship(['wal-push', history]);
      assert.equal(pushed.code, 0, `with the key: ${pushed.stderr}`);
      assert.equal((await storage.head('wal_005/00000063.history.zst'))?.metadata.walship_encryption, 'libsodium');
    });
  });
}

describe('switching a plaintext archive to encryption, deliberately', () => {
  let workRoot: string;
  before(() => {
    workRoot = makePostgresOwnedDirectory('walship-encryption-on-');
  });
  after(() => removeAfterHelpers(workRoot));

  it('refuses a key until encryption-on records the switch, then refuses hosts without it', async () => {
    const archive = join(workRoot, 'archive');
    const files = join(workRoot, 'files');
    mkdirSync(archive);
    mkdirSync(files);
    const plain = { WALG_FILE_PREFIX: archive };
    const keyed = { ...plain, WALG_LIBSODIUM_KEY: KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' };
    const walship = (args: string[], env: Record<string, string>) => run(walshipBinary, args, { env: { PATH: process.env.PATH!, ...env } });
    const segment = (name: string) => {
      const path = join(files, name);
      writeFileSync(path, asWalSegment(randomBytes(16 << 20)));
      return path;
    };

    assert.equal((await walship(['wal-push', segment('000000010000000000000001')], plain)).code, 0);
    assert.equal(JSON.parse(readFileSync(join(archive, 'walship', 'archive.json'), 'utf8')).Encryption, 'none');
    const second = segment('000000010000000000000002');
    const refused = await walship(['wal-push', second], keyed);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /is recorded as unencrypted \(walship\/archive\.json\), but a key is configured here \(WALG_LIBSODIUM_KEY\): to encrypt its new objects from now on, run `walship encryption-on` once with this key/);
    assert.ok(!existsSync(join(archive, 'wal_005', '000000010000000000000002.zst')), 'nothing stored');

    const noKey = await walship(['encryption-on'], plain);
    assert.equal(noKey.code, 1, noKey.stderr);
    assert.match(noKey.stderr, /encryption-on encrypts the archive with the configured key, and none is: set WALG_LIBSODIUM_KEY/);
    const switched = await walship(['encryption-on', '--json'], keyed);
    assert.equal(switched.code, 0, switched.stderr);
    const result = JSON.parse(switched.stdout);
    assert.equal(result.outcome, 'switched');
    assert.match(result.keyId, /^[0-9a-f]{16}$/);
    assert.ok(!switched.stdout.includes(KEY) && !switched.stderr.includes(KEY));
    assert.equal(JSON.parse((await walship(['encryption-on', '--json'], keyed)).stdout).outcome, 'already');

    assert.equal((await walship(['wal-push', second], keyed)).code, 0);
    const keyless = await walship(['wal-push', segment('000000010000000000000003')], plain);
    assert.equal(keyless.code, 1, keyless.stderr);
    assert.match(keyless.stderr, /is encrypted \(libsodium, key id [0-9a-f]{16}, as walship\/archive\.json records\), but no key is configured here/);
    // The older object stays readable with the key: its metadata says unencrypted.
    const fetched = await walship(['wal-fetch', '000000010000000000000001', join(files, 'RESTORED')], { ...keyed, WALSHIP_PREFETCH: 'false' });
    assert.equal(fetched.code, 0, fetched.stderr);
  });
});
