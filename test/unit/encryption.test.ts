// Client-side encryption: keys read with WAL-G's rules (its keytransform.go
// and crypter.go, and its tests' cases), WAL-G's chunking written exactly,
// and reading that refuses every deviation with a line that names the object.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { inspect } from 'node:util';
import { brotliDecompressSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { type EncryptionKey, readEncryptionKey, trimSpace } from '../../src/config/encryption.ts';
import { ConfigError } from '../../src/errors.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { decryptStage, encryptStage, keyIdOf } from '../../src/stages/encrypt/encryption.ts';
import { DecryptTransform, EncryptTransform, loadSodium } from '../../src/stages/encrypt/secretstream.ts';
import { Pipeline, type Stage } from '../../src/stages/pipeline.ts';
import { contentStages, storedFormMetadata, storedFormStages, upload } from '../../src/stages/transfer.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-encryption-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HEX_KEY = '4c0829fdfe7ae1987918edc585b1a90556d901eaea963c7625bb5734576dfb59';
const keyOf = (env: Record<string, string>, file = new Map<string, string>()) => readEncryptionKey(new Config(env, file, file.size ? '/etc/walship.yaml' : undefined));
const bytesOf = (env: Record<string, string>) => Buffer.from(keyOf(env)!.bytes());

function keyFile(content: string | Buffer, mode = 0o600): string {
  const path = join(mkdtempSync(join(root, 'key-')), 'key');
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

/** A ConfigError of one line that names `setting` and never shows `secret`. */
function refusal(pattern: RegExp, secret: string) {
  return (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(secret), `the key is never shown: ${error.message}`);
    assert.ok(!error.message.includes('\n'));
    return true;
  };
}

describe('the key, with WAL-G rules', () => {
  it('none: the UTF-8 bytes, at least 25, zero-padded or cut to 32', () => {
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY: 'TEST_LIBSODIUM_KEY_______' }), Buffer.concat([Buffer.from('TEST_LIBSODIUM_KEY_______'), Buffer.alloc(7)]));
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY: 'a'.repeat(32) + 'b'.repeat(10), WALG_LIBSODIUM_KEY_TRANSFORM: 'none' }), Buffer.from('a'.repeat(32)));
    // Bytes, not characters: 13 two-byte characters are 26 bytes, enough.
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY: 'é'.repeat(13) }).subarray(0, 26), Buffer.from('é'.repeat(13)));
    for (const short of ['short_key', 'x'.repeat(24)]) {
      assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY: short }), refusal(new RegExp(`^WALG_LIBSODIUM_KEY is too short: ${short.length} bytes, and WALG_LIBSODIUM_KEY_TRANSFORM=none takes at least 25`), short));
    }
  });

  it('none, from a config file: a key that is not UTF-8 text (U+FFFD) is refused, never taken for other bytes', () => {
    const text = 'replaced \uFFFD bytes, 25 bytes or more';
    assert.throws(
      () => keyOf({}, new Map([['WALG_LIBSODIUM_KEY', text]])),
      refusal(/^WALG_LIBSODIUM_KEY \(in \/etc\/walship\.yaml\) holds bytes that are not UTF-8 \(or U\+FFFD\), which a config file cannot give exactly .*: put the key in a key file \(WALG_LIBSODIUM_KEY_PATH\)/, text),
    );
  });

  it('hex and base64: exactly 32 bytes, strictly decoded (the cases of WAL-G crypter_test.go)', () => {
    assert.equal(bytesOf({ WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }).toString('hex'), HEX_KEY);
    assert.equal(bytesOf({ WALG_LIBSODIUM_KEY: HEX_KEY.toUpperCase(), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }).toString('hex'), HEX_KEY);
    const base64 = 'jv81yb3v3gNePrY0JmJ4q2j2NrqcM7tDYSHFoZ0tTIw=';
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY: base64, WALG_LIBSODIUM_KEY_TRANSFORM: 'base64' }), Buffer.from(base64, 'base64'));
    // Go's decoder skips line breaks.
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY: `${base64.slice(0, 20)}\r\n${base64.slice(20)}`, WALG_LIBSODIUM_KEY_TRANSFORM: 'base64' }), Buffer.from(base64, 'base64'));
    const refused: [string, string, RegExp][] = [
      ['2e4af6d03c7f73f4a80b0594dee2b4bcd11300bafb8a', 'hex', /decodes to 22 bytes \(WALG_LIBSODIUM_KEY_TRANSFORM=hex\): a libsodium key has exactly 32/],
      ['invalid hex', 'hex', /is not valid hex/],
      [`${HEX_KEY}\n`, 'hex', /is not valid hex/],
      ['invalid base64', 'base64', /is not valid base64/],
      ['DBXYo+QaYKCLSNad+m27jl2UHtW4Htm9pStJv1ujjKPB2N5fmitOFw==', 'base64', /decodes to 40 bytes/],
      // Node's own decoder would take these; Go's does not.
      [base64.slice(0, -1), 'base64', /is not valid base64/],
      [base64.replace('j', '-'), 'base64', /is not valid base64/],
      [` ${base64}`, 'base64', /is not valid base64/],
    ];
    for (const [key, transform, pattern] of refused) {
      assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY: key, WALG_LIBSODIUM_KEY_TRANSFORM: transform }), refusal(pattern, key.trim() || key), `${transform} ${key}`);
    }
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'rot13' }), refusal(/^WALG_LIBSODIUM_KEY_TRANSFORM="rot13" is invalid: expected one of none, base64, hex$/, HEX_KEY));
  });

  it('a key file is trimmed of white space as Go trims it (the inline key is not), and read as bytes', () => {
    // WAL-G's testdata/testKey (transform none: a newline before and after), testKeyB64 and testKeyHex.
    const walgKey = '-+isw)@(s&56x57eh1%y3@r$*qs_&@$--abnm9m@18@9-e%um1';
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY_PATH: keyFile(`\n${walgKey}\n`) }), Buffer.from(walgKey.slice(0, 32)));
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY_PATH: keyFile('ca3UjO06O3ItMJ9A5g/bZUCyYW2HHRgAwG9RhDhw5hk='), WALG_LIBSODIUM_KEY_TRANSFORM: 'base64' }), Buffer.from('ca3UjO06O3ItMJ9A5g/bZUCyYW2HHRgAwG9RhDhw5hk=', 'base64'));
    assert.equal(bytesOf({ WALG_LIBSODIUM_KEY_PATH: keyFile('2e4af6d03c7f73f4a80b0594dee2b4bcd11300bafb8a68b2dda610fc88817fb2'), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }).toString('hex'), '2e4af6d03c7f73f4a80b0594dee2b4bcd11300bafb8a68b2dda610fc88817fb2');
    assert.equal(bytesOf({ WALG_LIBSODIUM_KEY_PATH: keyFile(` \t${HEX_KEY}\r\n\n`), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }).toString('hex'), HEX_KEY);
    // Unicode white space too (U+00A0, U+2003, U+3000, U+0085), but not a byte-order mark, which Go keeps and JavaScript's trim() would drop.
    assert.equal(trimSpace(Buffer.from('\u00a0\u2003 key \u3000\u0085')).toString(), 'key');
    assert.equal(trimSpace(Buffer.from('\ufeffkey')).toString(), '\ufeffkey');
    // Bytes that are not UTF-8 stay as they are: with transform none they are the key.
    const raw = Buffer.concat([Buffer.from([0xff, 0xfe, 0xc2]), randomBytes(29), Buffer.from([0xe2, 0x80])]);
    assert.deepEqual(bytesOf({ WALG_LIBSODIUM_KEY_PATH: keyFile(Buffer.concat([raw, Buffer.from(' \n')])) }), raw.subarray(0, 32));
    assert.deepEqual(trimSpace(Buffer.from([0x20, 0xe2, 0x80, 0x80, 0x41, 0xc2, 0x85])), Buffer.from([0x41]));
    // The inline key is taken as given: a trailing newline breaks hex, as in WAL-G.
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY: `${HEX_KEY}\n`, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }), /is not valid hex/);
  });

  it('refuses what WAL-G would quietly pick or read: both settings, a transform alone, a relative path, a key file others may read', () => {
    const file = keyFile(HEX_KEY);
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_PATH: file }), refusal(/^both WALG_LIBSODIUM_KEY and WALG_LIBSODIUM_KEY_PATH are set: set only one/, HEX_KEY));
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }), refusal(/^WALG_LIBSODIUM_KEY_TRANSFORM is set, but no key is: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH/, HEX_KEY));
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY_PATH: 'etc/key' }), refusal(/^WALG_LIBSODIUM_KEY_PATH="etc\/key" is invalid: expected an absolute path$/, HEX_KEY));
    const readable = keyFile(HEX_KEY, 0o644);
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY_PATH: readable, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }), refusal(new RegExp(`may be read or written by every user \\(mode 0644\\): chmod o-rwx ${readable}`), HEX_KEY));
    assert.throws(() => keyOf({ WALG_LIBSODIUM_KEY_PATH: join(root, 'missing') }), refusal(/^cannot read WALG_LIBSODIUM_KEY_PATH=.*missing \(ENOENT\)/, HEX_KEY));
    assert.throws(() => keyOf({}, new Map([['WALG_LIBSODIUM_KEY', 'tiny!']])), refusal(/^WALG_LIBSODIUM_KEY \(in \/etc\/walship\.yaml\) is too short/, 'tiny!'));
    assert.ok(keyOf({ WALG_LIBSODIUM_KEY_PATH: keyFile(HEX_KEY, 0o640), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }), 'group-readable is fine');
    assert.equal(keyOf({}), undefined);
  });

  it('never shows the key, printed or serialised', () => {
    const key = keyOf({ WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' })!;
    for (const shown of [JSON.stringify({ key }), inspect({ key }, { showHidden: true, depth: 5 }), String(key.toJSON())]) {
      assert.ok(!shown.includes(HEX_KEY.slice(0, 16)) && !shown.includes('76, 8, 41'), shown);
      assert.match(shown, /libsodium key from WALG_LIBSODIUM_KEY/);
    }
  });
});

/** `content` through the encrypting transform, in pieces of `piece` bytes. */
async function encrypt(content: Buffer, key: Uint8Array, piece = 10_000): Promise<Buffer> {
  const sodium = await loadSodium();
  const pieces = Array.from({ length: Math.ceil(content.length / piece) }, (_, index) => content.subarray(index * piece, (index + 1) * piece));
  return buffer(Readable.from(pieces).pipe(new EncryptTransform(sodium, key)));
}

async function decrypt(stored: Buffer, key: Uint8Array, piece = 7_777, options = { recorded: true, keyConfirmed: false }): Promise<Buffer> {
  const sodium = await loadSodium();
  const pieces = Array.from({ length: Math.ceil(stored.length / piece) }, (_, index) => stored.subarray(index * piece, (index + 1) * piece));
  const output: Buffer[] = [];
  for await (const chunk of Readable.from(pieces).pipe(new DecryptTransform(sodium, key, { what: 'wal_005/X.zst', keyOrigin: 'WALG_LIBSODIUM_KEY', ...options }))) output.push(chunk as Buffer);
  return Buffer.concat(output);
}

describe("WAL-G's chunking", () => {
  const key = randomBytes(32);

  it('stores the header, 8209 bytes per 8192 of content and one shorter FINAL chunk, and reads it back from pieces of any size', async () => {
    for (const size of [0, 1, 8191, 8192, 8193, 3 * 8192, 100_000]) {
      const content = randomBytes(size);
      for (const piece of [1, 8192, 8209, 65_536]) {
        const stored = await encrypt(content, key, piece);
        assert.equal(stored.length, 24 + size + 17 * (Math.floor(size / 8192) + 1), `${size} in pieces of ${piece}`);
        assert.deepEqual(await decrypt(stored, key, piece + 3), content);
      }
    }
  });

  it('refuses a wrong key, a flipped byte, a cut stream and trailing bytes, each named', async () => {
    const content = randomBytes(5 * 8192 + 100);
    const stored = await encrypt(content, key);
    await assert.rejects(decrypt(stored, randomBytes(32)), { name: 'IntegrityError', message: /^wal_005\/X\.zst cannot be decrypted with the configured key \(WALG_LIBSODIUM_KEY\): it was encrypted with another key, or it is damaged$/ });
    await assert.rejects(decrypt(stored, randomBytes(32), 7_777, { recorded: true, keyConfirmed: true }), /is corrupt: its first encrypted chunk fails authentication, though the configured key is the one it was stored with/);
    const flipped = Buffer.from(stored);
    flipped[24 + 8209 * 2 + 500]! ^= 1;
    await assert.rejects(decrypt(flipped, key), { name: 'IntegrityError', message: /^wal_005\/X\.zst is corrupt: encrypted chunk 3 fails authentication/ });
    await assert.rejects(decrypt(stored.subarray(0, 24 + 8209 * 5), key), /is corrupt: its encrypted stream ends after 5 full chunks, without the final chunk \(truncated\)/);
    await assert.rejects(decrypt(stored.subarray(0, 24 + 8209 * 5 + 10), key), /ends after 5 full chunks and 10 bytes, without the final chunk/);
    await assert.rejects(decrypt(stored.subarray(0, stored.length - 1), key), /encrypted chunk 6 fails authentication/);
    await assert.rejects(decrypt(Buffer.concat([stored, Buffer.from('x')]), key), /encrypted chunk 6 fails authentication/);
    await assert.rejects(decrypt(stored.subarray(0, 20), key), /is corrupt: 20 bytes, too short to be encrypted/);
    await assert.rejects(decrypt(Buffer.alloc(0), key), /is corrupt: 0 bytes, too short/);
  });

  it('refuses the tags WAL-G does not write: a full FINAL chunk, a short last MESSAGE chunk', async () => {
    const sodium = await loadSodium();
    const stream = (chunks: [Buffer, number][]) => {
      const state = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES);
      const header = Buffer.alloc(24);
      sodium.crypto_secretstream_xchacha20poly1305_init_push(state, header, key);
      return Buffer.concat([header, ...chunks.map(([content, tag]) => {
        const out = Buffer.alloc(content.length + 17);
        sodium.crypto_secretstream_xchacha20poly1305_push(state, out, content, null, tag);
        return out;
      })]);
    };
    const { crypto_secretstream_xchacha20poly1305_TAG_FINAL: FINAL, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE: MESSAGE } = sodium;
    assert.deepEqual(await decrypt(stream([[Buffer.alloc(8192, 1), MESSAGE], [Buffer.alloc(5, 2), FINAL]]), key), Buffer.concat([Buffer.alloc(8192, 1), Buffer.alloc(5, 2)]));
    await assert.rejects(decrypt(stream([[Buffer.alloc(8192, 1), FINAL]]), key), /encrypted chunk 1 has tag 3, where WAL-G's format has MESSAGE for a full chunk/);
    await assert.rejects(decrypt(stream([[Buffer.alloc(8192, 1), MESSAGE], [Buffer.alloc(5, 2), MESSAGE]]), key), /encrypted chunk 2 has tag 0, where WAL-G's format has FINAL for the last, short chunk/);
  });

  it('says an object nothing records as encrypted, which a key cannot open, is not encrypted when it starts with a zstd frame', async () => {
    const zstd = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(200)]);
    await assert.rejects(decrypt(zstd, key, 7_777, { recorded: false, keyConfirmed: false }), /is not encrypted \(it starts with a zstd frame\), but a key is configured/);
    await assert.rejects(decrypt(zstd, key, 7_777, { recorded: true, keyConfirmed: false }), /cannot be decrypted with the configured key/);
  });
});

describe('encryption in the stored form', () => {
  const encryptedStorage = async (directory: string, env: Record<string, string>): Promise<Storage> => {
    const storage = await FileStorage.open(directory);
    Object.defineProperty(storage, 'encryption', { value: keyOf(env) });
    return storage;
  };

  it('compresses, then encrypts, records how and with which key, and never records a checksum of the plain content', async () => {
    const directory = mkdtempSync(join(root, 'archive-'));
    const storage = await encryptedStorage(directory, { WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' });
    const content = Buffer.alloc(300_000, 7);
    const codec = codecFor('zstd');
    const metadata = await storedFormMetadata(storage, { algorithm: 'crc32', checksum: 'cafebabe', size: content.length });
    assert.deepEqual(metadata, { walship_size: '300000', walship_encryption: 'libsodium', walship_key_id: await keyIdOf(storage.encryption!) });
    assert.match(metadata.walship_key_id!, /^[0-9a-f]{16}$/);
    await upload(storage, 'wal_005/000000010000000000000001.zst', Readable.from([content]), storedFormStages(storage, codec, 1), { metadata });
    const stored = await storage.get('wal_005/000000010000000000000001.zst');
    const raw = await buffer(stored.body);
    assert.ok(raw.length < 1000, 'compressed before it was encrypted');
    const opened = await storage.get('wal_005/000000010000000000000001.zst');
    assert.deepEqual(await buffer(await new Pipeline(opened.body, contentStages(storage, codec, opened)).readable()), content);

    // Without the key, or with another one, reading stops before any content, saying why.
    const plain = await FileStorage.open(directory);
    const again = await plain.get('wal_005/000000010000000000000001.zst');
    await assert.rejects(async () => buffer(await new Pipeline(again.body, contentStages(plain, codec, again)).readable()), /is encrypted \(libsodium\), but no key is configured: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH/);
    const other = await encryptedStorage(directory, { WALG_LIBSODIUM_KEY: 'another key of at least 25 bytes' });
    const third = await other.get('wal_005/000000010000000000000001.zst');
    await assert.rejects(
      async () => buffer(await new Pipeline(third.body, contentStages(other, codec, third)).readable()),
      new RegExp(`was encrypted with another key \\(key id ${metadata.walship_key_id}\\) than the configured one \\(WALG_LIBSODIUM_KEY, key id [0-9a-f]{16}\\)`),
    );
  });

  it('reads what walship stored unencrypted as it is, and decrypts what nothing records (WAL-G\'s objects) only with a key', async () => {
    const key = keyOf({ WALG_LIBSODIUM_KEY: HEX_KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' })!;
    const what = 'wal_005/X';
    assert.equal(decryptStage({ method: 'none' }, key, what), undefined);
    assert.equal(decryptStage({ method: undefined }, undefined, what), undefined);
    assert.equal(decryptStage({ method: undefined }, key, what)?.name, 'decrypt');
    await assert.rejects(async () => decryptStage({ method: 'aws-kms' }, key, what)!.transform(), /is encrypted with "aws-kms", which walship cannot decrypt/);

    // A WAL-G object read without a key: a frame that does not parse may be encrypted.
    const directory = mkdtempSync(join(root, 'walg-'));
    const storage = await FileStorage.open(directory);
    const encrypted = await encrypt(Buffer.from('x'.repeat(1000)), key.bytes());
    await storage.put('wal_005/000000010000000000000002.zst', Readable.from([encrypted]));
    const stored = await storage.get('wal_005/000000010000000000000002.zst');
    const hinted = /is corrupt: .*; it carries no walship metadata, so it may be encrypted \(WAL-G's libsodium encryption\): then set WALG_LIBSODIUM_KEY/;
    const pieces: Buffer[] = [];
    await assert.rejects(new Pipeline(stored.body, contentStages(storage, codecFor('zstd'), stored)).drain((piece) => pieces.push(piece)), hinted);
    // brotli has no magic number: a random header can read as a whole (empty) brotli stream, so use a ciphertext brotli refuses.
    let undecodable = encrypted;
    while (decodesAsBrotli(undecodable)) undecodable = await encrypt(Buffer.from('x'.repeat(1000)), key.bytes());
    await storage.put('wal_005/000000010000000000000003.br', Readable.from([undecodable]));
    const streamed = await storage.get('wal_005/000000010000000000000003.br');
    await assert.rejects(async () => {
      for await (const _ of new Pipeline(streamed.body, contentStages(storage, codecFor('brotli'), streamed)).pieces());
    }, /cannot be decompressed .*; it carries no walship metadata, so it may be encrypted/);
  });

  it('encrypts before the stored-byte watchers, so their sizes and digests are of what is stored', async () => {
    const storage = await encryptedStorage(mkdtempSync(join(root, 'sizes-')), { WALG_LIBSODIUM_KEY: 'a key long enough for none!' });
    const stages: (Stage | undefined)[] = [...storedFormStages(storage, codecFor('none'), 0)];
    assert.deepEqual(stages.map((stage) => stage?.name), [undefined, 'encrypt']);
    const content = randomBytes(20_000);
    const stored = await buffer(await new Pipeline(Readable.from([content]), [encryptStage(storage.encryption as EncryptionKey)]).readable());
    assert.equal(stored.length, 24 + 20_000 + 3 * 17);
    assert.ok(!(await encrypt(content, (storage.encryption as EncryptionKey).bytes())).equals(stored), 'every stream has its own header (nonce)');
    assert.ok(stored.subarray(24).indexOf(content.subarray(0, 64)) < 0);
  });
});

function decodesAsBrotli(bytes: Buffer): boolean {
  try {
    brotliDecompressSync(bytes);
    return true;
  } catch {
    return false;
  }
}
