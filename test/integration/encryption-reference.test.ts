// walship's encryption against an independent reference: Debian's
// python3-nacl (libsodium's own crypto_secretstream_xchacha20poly1305),
// driven by test/support/libsodium-reference.py, which follows WAL-G's
// writer, reader and key transforms. The reference encrypts and the built
// binary's wal-fetch decrypts; the binary's wal-push encrypts and the
// reference decrypts: for every key transform, a key given inline and in a
// file, content of 0 bytes, of exactly three chunks, and of an odd length.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { projectRoot, walshipBinary } from '../support/paths.ts';
import { removeAfterHelpers, run } from '../support/processes.ts';

const PYTHON = '/usr/bin/python3';
const REFERENCE = join(projectRoot, 'test/support/libsodium-reference.py');

const root = mkdtempSync(join(tmpdir(), 'walship-encryption-reference-'));
after(() => removeAfterHelpers(root));

interface KeyCase {
  name: string;
  transform: 'none' | 'base64' | 'hex';
  /** The key as configured: inline, or the content of a key file. */
  text: string;
  inFile: boolean;
}

function keyFile(text: string): string {
  const path = join(mkdtempSync(join(root, 'key-')), 'libsodium.key');
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}

const KEYS: KeyCase[] = [
  { name: 'none, 25 bytes, zero-padded', transform: 'none', text: 'TEST_LIBSODIUM_KEY_______', inFile: false },
  { name: 'none, 45 bytes, cut to 32', transform: 'none', text: 'a passphrase longer than the 32 bytes it keeps', inFile: false },
  { name: 'none, in a file with white space around', transform: 'none', text: '\n  key-file key of about 30 bytes \t\n', inFile: true },
  { name: 'base64', transform: 'base64', text: randomBytes(32).toString('base64'), inFile: false },
  { name: 'base64, in a file ending in a newline', transform: 'base64', text: `${randomBytes(32).toString('base64')}\n`, inFile: true },
  { name: 'hex', transform: 'hex', text: randomBytes(32).toString('hex'), inFile: false },
  { name: 'hex, in a file', transform: 'hex', text: `${randomBytes(32).toString('hex')}\r\n`, inFile: true },
];

const CONTENTS: [name: string, content: Buffer][] = [
  ['0 bytes', Buffer.alloc(0)],
  ['exactly 3 x 8192 bytes', randomBytes(3 * 8192)],
  ['100001 bytes', randomBytes(100_001)],
];

/** The settings that configure `key` for walship. */
function settingsOf(key: KeyCase): Record<string, string> {
  const given: Record<string, string> = key.inFile ? { WALG_LIBSODIUM_KEY_PATH: keyFile(key.text) } : { WALG_LIBSODIUM_KEY: key.text };
  return { ...given, WALG_LIBSODIUM_KEY_TRANSFORM: key.transform };
}

function reference(mode: 'encrypt' | 'decrypt', key: KeyCase, settings: Record<string, string>, input: Buffer): Buffer {
  const source = key.inFile ? ['--key-file', settings.WALG_LIBSODIUM_KEY_PATH!] : ['--key', key.text];
  const result = spawnSync(PYTHON, [REFERENCE, mode, key.transform, ...source], { input, maxBuffer: 64 << 20 });
  assert.equal(result.status, 0, `the reference failed to ${mode}: ${result.stderr}`);
  return result.stdout;
}

let archive: string;
let dataDir: string;
let timeline = 1;

function walship(args: string[], env: Record<string, string>) {
  return run(walshipBinary, args, { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', ...env } });
}

/** A history file's name for each case: their content is not checked, so any bytes will do. */
const nextHistoryFile = () => `${(++timeline).toString(16).toUpperCase().padStart(8, '0')}.history`;

before(() => {
  archive = join(root, 'archive');
  dataDir = join(root, 'data');
  mkdirSync(join(archive, 'wal_005'), { recursive: true });
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
});

describe("encryption against libsodium's reference (python3-nacl), in WAL-G's format", () => {
  for (const key of KEYS) {
    it(`key transform ${key.name}: walship reads what the reference wrote, and the reference reads what walship wrote`, async () => {
      const settings = settingsOf(key);
      for (const [name, content] of CONTENTS) {
        // As WAL-G stores it: the encrypted object, no metadata (uncompressed here, so the bytes are the content's).
        const fromReference = nextHistoryFile();
        const encrypted = reference('encrypt', key, settings, content);
        assert.equal(encrypted.length, 24 + content.length + 17 * (Math.floor(content.length / 8192) + 1), name);
        writeFileSync(join(archive, 'wal_005', fromReference), encrypted);
        const fetched = await walship(['wal-fetch', fromReference, `pg_wal/${fromReference}.restored`], settings);
        assert.equal(fetched.code, 0, `${name}: ${fetched.stderr}`);
        assert.deepEqual(readFileSync(join(dataDir, 'pg_wal', `${fromReference}.restored`)), content, `${name}: walship decrypts the reference`);

        const fromWalship = nextHistoryFile();
        writeFileSync(join(dataDir, 'pg_wal', fromWalship), content);
        const pushed = await walship(['wal-push', `pg_wal/${fromWalship}`], { ...settings, WALG_COMPRESSION_METHOD: 'none' });
        assert.equal(pushed.code, 0, `${name}: ${pushed.stderr}`);
        const stored = readFileSync(join(archive, 'wal_005', fromWalship));
        assert.deepEqual(reference('decrypt', key, settings, stored), content, `${name}: the reference decrypts walship`);
      }
    });
  }

  it('compresses first, then encrypts, both ways: zstd frames inside the encryption', async () => {
    const key = KEYS.at(-2)!;
    const settings = settingsOf(key);
    const content = Buffer.concat([Buffer.alloc(200_000, 'a'), randomBytes(5000)]);

    const fromWalship = nextHistoryFile();
    writeFileSync(join(dataDir, 'pg_wal', fromWalship), content);
    const pushed = await walship(['wal-push', `pg_wal/${fromWalship}`], settings);
    assert.equal(pushed.code, 0, pushed.stderr);
    const stored = readFileSync(join(archive, 'wal_005', `${fromWalship}.zst`));
    assert.ok(stored.length < 20_000, 'compressed before encryption');
    assert.deepEqual(zstdDecompressSync(reference('decrypt', key, settings, stored)), content);

    const fromReference = nextHistoryFile();
    writeFileSync(join(archive, 'wal_005', `${fromReference}.zst`), reference('encrypt', key, settings, zstdCompressSync(content)));
    const fetched = await walship(['wal-fetch', fromReference, 'pg_wal/zstd.restored'], settings);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(readFileSync(join(dataDir, 'pg_wal', 'zstd.restored')), content);
  });
});

/**
 * walship run with WALG_LIBSODIUM_KEY set to exactly `bytes` in its
 * environment (a shell's printf makes them: Node's own environment is text).
 */
function walshipWithKeyBytes(args: string[], bytes: Buffer, env: Record<string, string>) {
  const octal = [...bytes].map((byte) => `\\${byte.toString(8).padStart(3, '0')}`).join('');
  const script = 'WALG_LIBSODIUM_KEY="$(printf "$KEY_OCTAL")"; export WALG_LIBSODIUM_KEY; unset KEY_OCTAL; exec "$@"';
  return run('/bin/sh', ['-c', script, 'sh', walshipBinary, ...args], {
    cwd: dataDir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', KEY_OCTAL: octal, ...env },
  });
}

describe('an inline key taken as bytes, as WAL-G takes it (Go strings are bytes)', () => {
  const cases: [name: string, bytes: Buffer][] = [
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('not valid UTF-8 at all'), Buffer.from([0xc3, 0x28, 0xe2, 0x82])])],
    ['multibyte characters, cut to 32 bytes inside one', Buffer.from('ключ архива, не короче 25 байт', 'utf8')],
    ['a real U+FFFD among them', Buffer.from('replacement \uFFFD character, 32+ bytes', 'utf8')],
  ];
  for (const [name, bytes] of cases) {
    it(`transform none, ${name}: the same key as the reference's, both ways`, async () => {
      const key: KeyCase = { name, transform: 'none', text: '', inFile: false };
      const referenceWith = (mode: 'encrypt' | 'decrypt', input: Buffer) => {
        const result = spawnSync(PYTHON, [REFERENCE, mode, key.transform, '--key-bytes', bytes.toString('hex')], { input, maxBuffer: 64 << 20 });
        assert.equal(result.status, 0, `the reference failed to ${mode}: ${result.stderr}`);
        return result.stdout;
      };
      const content = randomBytes(20_000);
      const fromWalship = nextHistoryFile();
      writeFileSync(join(dataDir, 'pg_wal', fromWalship), content);
      const pushed = await walshipWithKeyBytes(['wal-push', `pg_wal/${fromWalship}`], bytes, { WALG_COMPRESSION_METHOD: 'none', WALG_LOG_LEVEL: 'DEVEL' });
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.ok(!Buffer.from(pushed.stderr).includes(bytes.subarray(2, 20)), 'the key is never printed');
      assert.deepEqual(referenceWith('decrypt', readFileSync(join(archive, 'wal_005', fromWalship))), content, 'the reference decrypts walship');

      const fromReference = nextHistoryFile();
      writeFileSync(join(archive, 'wal_005', fromReference), referenceWith('encrypt', content));
      const fetched = await walshipWithKeyBytes(['wal-fetch', fromReference, `pg_wal/${fromReference}.restored`], bytes, {});
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.deepEqual(readFileSync(join(dataDir, 'pg_wal', `${fromReference}.restored`)), content, 'walship decrypts the reference');
    });
  }
});
