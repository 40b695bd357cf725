// Which cluster an archive belongs to: recorded once, create-only, derived
// from backups or stored WAL where an older archive has no record, and cached
// so the steady state asks storage nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { ArchiveIdentity, RECHECK_MS, switchOnEncryption, type VerifiedArchive, type VerifiedIdentityCache } from '../../src/archive/identity.ts';
import { NotFoundError } from '../../src/errors.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { keyIdOf } from '../../src/stages/encrypt/encryption.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { withKey } from '../support/storage.ts';
import { walLongPageHeader } from '../support/wal.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-identity-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SOURCE = 'pg_wal/000000010000000000000001 was written by';
const cluster = (systemIdentifier: string) => ({ systemIdentifier, segmentSize: 16 << 20 });

async function emptyArchive(): Promise<{ directory: string; storage: FileStorage }> {
  const directory = mkdtempSync(join(root, 'archive-'));
  return { directory, storage: await FileStorage.open(directory) };
}

function identityOf(directory: string): unknown {
  return JSON.parse(readFileSync(join(directory, 'walship', 'archive.json'), 'utf8')).SystemIdentifier;
}

function refusal(location: string, owner: string, evidence: string, cluster: string): RegExp {
  const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(
    `: ${escaped(`the archive in ${location} belongs to the cluster with system identifier ${owner} (${evidence}), but ${SOURCE} cluster ${cluster}: after initdb or pg_upgrade, archive into a new prefix (WALG_FILE_PREFIX); nothing was stored`)}$`,
  );
}

/** A sentinel as another tool writes it: SystemIdentifier is a bare JSON number, above 2^53. */
function writeSentinel(directory: string, name: string, systemIdentifier: string): void {
  mkdirSync(join(directory, 'basebackups_005'), { recursive: true });
  writeFileSync(join(directory, 'basebackups_005', `${name}_backup_stop_sentinel.json`), `{"LSN":16777256,"SystemIdentifier":${systemIdentifier},"Version":2}`);
}

/** Storage that counts requests, and can fail them all. */
function watched(inner: Storage, options: { fail?: boolean; missingOnce?: string } = {}): Storage & { requests: number } {
  let missingOnce = options.missingOnce;
  const count = <T>(request: () => Promise<T>): Promise<T> => {
    wrapper.requests++;
    return options.fail ? Promise.reject(new Error('storage unreachable')) : request();
  };
  const wrapper = {
    requests: 0,
    location: inner.location,
    capabilities: inner.capabilities,
    put: (key: string, body: Readable, putOptions?: Parameters<Storage['put']>[2]) => count(() => inner.put(key, body, putOptions)),
    get: (key: string) =>
      count(() => {
        if (key !== missingOnce) return inner.get(key);
        missingOnce = undefined;
        return Promise.reject(new NotFoundError(`${key} is not there (yet)`));
      }),
    head: (key: string) => count(() => inner.head(key)),
    list: (prefix: string) => {
      wrapper.requests++;
      if (options.fail) throw new Error('storage unreachable');
      return inner.list(prefix);
    },
    delete: (key: string) => count(() => inner.delete(key)),
    deleteMany: (keys: readonly string[]) => count(() => inner.deleteMany(keys)),
  };
  return wrapper;
}

class MemoryCache implements VerifiedIdentityCache {
  value: string | undefined;
  verified: VerifiedArchive | undefined;
  constructor(value?: string) {
    this.value = value;
    this.verified = value === undefined ? undefined : { systemIdentifier: value, encryption: 'none', verifiedAt: Date.now() };
  }
  async verifiedArchive(): Promise<VerifiedArchive | undefined> {
    return this.verified;
  }
  async rememberArchive(verified: VerifiedArchive): Promise<void> {
    this.verified = verified;
    this.value = verified.systemIdentifier;
  }
}

describe('the archive identity', () => {
  it('is recorded create-only by the first cluster, which then owns the archive', async () => {
    const { directory, storage } = await emptyArchive();
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE);
    assert.equal(identityOf(directory), '111');
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE);
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('222'), SOURCE), refusal(storage.location, '111', 'walship/archive.json', '222'));
    assert.equal(identityOf(directory), '111');
  });

  it('comes from the backups of an archive without a record, exactly, even as a JSON number above 2^53', async () => {
    const { directory, storage } = await emptyArchive();
    writeSentinel(directory, 'base_000000010000000000000002', '7312345678901234567');
    await assert.rejects(
      new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('7312345678901234568'), SOURCE),
      refusal(storage.location, '7312345678901234567', 'backup base_000000010000000000000002', '7312345678901234568'),
    );
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('7312345678901234567'), SOURCE);
    assert.equal(identityOf(directory), '7312345678901234567');
  });

  it('is refused to every cluster when the backups of an archive without a record disagree', async () => {
    const { directory, storage } = await emptyArchive();
    writeSentinel(directory, 'base_000000010000000000000002', '100');
    writeSentinel(directory, 'base_000000010000000000000009', '200');
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('100'), SOURCE), /system identifier 200 \(backup base_000000010000000000000009\)/);
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('200'), SOURCE), /system identifier 100 \(backup base_000000010000000000000002\)/);
  });

  it('comes from the oldest stored segment of an archive without a record or backups', async () => {
    for (const method of ['zstd', 'none'] as const) {
      const { directory, storage } = await emptyArchive();
      const codec = codecFor(method);
      const key = `wal_005/000000010000000000000003${codec.extension ? `.${codec.extension}` : ''}`;
      const content = Buffer.concat([walLongPageHeader({ systemIdentifier: '333' }), Buffer.alloc(1 << 20)]);
      await storage.put(key, await new Pipeline(Readable.from([content]), [codec.compress(1)]).readable());
      await storage.put('wal_005/00000001.history', Readable.from([Buffer.from('not a segment')]));
      await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('444'), SOURCE), refusal(storage.location, '333', `its oldest segment, ${key}`, '444'));
      await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('333'), SOURCE);
      assert.equal(identityOf(directory), '333');
    }
  });

  it('goes to the first cluster that pushes when the oldest segment is damaged, but never when storage fails', async () => {
    const { directory, storage } = await emptyArchive();
    await storage.put('wal_005/000000010000000000000004.zst', Readable.from([Buffer.from('not zstd at all')]));
    const broken: Storage = {
      ...watched(storage),
      get: async (key) => {
        const stored = await storage.get(key);
        const body = new Readable({ read() { this.destroy(new Error('connection reset')); } });
        return { ...stored, body };
      },
    };
    await assert.rejects(new ArchiveIdentity(broken, 'WALG_FILE_PREFIX').requireCluster(cluster('555'), SOURCE), /connection reset/);
    assert.ok(!existsSync(join(directory, 'walship')), 'nothing recorded without an answer');
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('555'), SOURCE);
    assert.equal(identityOf(directory), '555');
  });

  it('is the winner\'s when another push recorded it first', async () => {
    const { directory, storage } = await emptyArchive();
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('555'), SOURCE);
    // It looked missing, so this push tries to record its own and loses.
    const racing = watched(storage, { missingOnce: 'walship/archive.json' });
    await assert.rejects(new ArchiveIdentity(racing, 'WALG_FILE_PREFIX').requireCluster(cluster('666'), SOURCE), refusal(storage.location, '555', 'walship/archive.json', '666'));
    await new ArchiveIdentity(watched(storage, { missingOnce: 'walship/archive.json' }), 'WALG_FILE_PREFIX').requireCluster(cluster('555'), SOURCE);
    assert.equal(identityOf(directory), '555');
  });

  it('answers from the cache without a storage request once verified, and only storage may refuse', async () => {
    const { storage } = await emptyArchive();
    const cache = new MemoryCache();
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('777'), SOURCE);
    assert.equal(cache.value, '777', 'verified and cached');

    const unreachable = watched(storage, { fail: true });
    await new ArchiveIdentity(unreachable, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('777'), SOURCE);
    assert.equal(unreachable.requests, 0);
    // Another cluster is never refused on the cache's word: storage is asked.
    await assert.rejects(new ArchiveIdentity(unreachable, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('888'), SOURCE), /storage unreachable/);
    assert.ok(unreachable.requests > 0);

    // A stale cache (say, from before the archive was emptied and given to this cluster) is corrected.
    const stale = new MemoryCache('999');
    const counted = watched(storage);
    const identity = new ArchiveIdentity(counted, 'WALG_FILE_PREFIX', stale);
    await identity.requireCluster(cluster('777'), SOURCE);
    assert.equal(stale.value, '777');
    const requests = counted.requests;
    await identity.requireCluster(cluster('777'), SOURCE);
    assert.equal(counted.requests, requests, 'the second file of a process asks nothing');
  });

  it('refuses a damaged record with one line saying how to repair it', async () => {
    const { directory, storage } = await emptyArchive();
    mkdirSync(join(directory, 'walship'));
    writeFileSync(join(directory, 'walship', 'archive.json'), '{"SystemIdentifier": 12');
    await assert.rejects(
      new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE),
      /walship\/archive\.json in file:.* is damaged \(no SystemIdentifier\): restore it with the system identifier of the cluster that archives here/,
    );
  });
});

function recordOf(directory: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(directory, 'walship', 'archive.json'), 'utf8'));
}

describe("the archive's encryption, recorded with its identity", () => {
  it('refuses a host without the key, or with another key, in an archive recorded as encrypted, for every kind of file', async () => {
    const { directory, storage } = await emptyArchive();
    const keyed = withKey(storage, 'the archive key');
    await new ArchiveIdentity(keyed, 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE);
    const keyId = await keyIdOf(keyed.encryption!);
    assert.equal(recordOf(directory).Encryption, 'libsodium');
    assert.equal(recordOf(directory).EncryptionKeyId, keyId);
    assert.ok(!readFileSync(join(directory, 'walship', 'archive.json'), 'utf8').includes('the archive key'), 'never the key');

    const keyless = new RegExp(
      `: the archive in ${storage.location.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is encrypted \\(libsodium, key id ${keyId}, as walship/archive.json records\\), but no key is configured here: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH .*; nothing was stored$`,
    );
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE), keyless);
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireEncryption(), keyless, 'a history file too');
    await assert.rejects(
      new ArchiveIdentity(withKey(storage, 'another key'), 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE),
      new RegExp(`is encrypted with another key \\(key id ${keyId}, as walship/archive.json records\\) than the configured one \\(WALG_LIBSODIUM_KEY, key id [0-9a-f]{16}\\): configure the archive's key, or change keys with a new prefix \\(WALG_FILE_PREFIX\\); nothing was stored$`),
    );
    await new ArchiveIdentity(withKey(storage, 'the archive key'), 'WALG_FILE_PREFIX').requireCluster(cluster('111'), SOURCE);
    await new ArchiveIdentity(withKey(storage, 'the archive key'), 'WALG_FILE_PREFIX').requireEncryption();
  });

  it('refuses a key in an archive recorded as unencrypted until encryption-on switches it; keyless hosts follow within RECHECK_MS', async () => {
    const { directory, storage } = await emptyArchive();
    const cache = new MemoryCache();
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('222'), SOURCE);
    assert.equal(recordOf(directory).Encryption, 'none');
    const keyed = withKey(storage, 'the new key');
    await assert.rejects(
      new ArchiveIdentity(keyed, 'WALG_FILE_PREFIX').requireCluster(cluster('222'), SOURCE),
      /is recorded as unencrypted \(walship\/archive\.json\), but a key is configured here \(WALG_LIBSODIUM_KEY\): to encrypt its new objects from now on, run `walship encryption-on` once with this key, .*; nothing was stored$/,
    );
    await assert.rejects(switchOnEncryption(storage, 'WALG_FILE_PREFIX'), /encryption-on encrypts the archive with the configured key, and none is: set WALG_LIBSODIUM_KEY/);

    assert.deepEqual(await switchOnEncryption(keyed, 'WALG_FILE_PREFIX'), { outcome: 'switched', keyId: await keyIdOf(keyed.encryption!) });
    assert.equal(recordOf(directory).SystemIdentifier, '222', 'the rest of the record kept');
    assert.equal((await switchOnEncryption(keyed, 'WALG_FILE_PREFIX')).outcome, 'already');
    await assert.rejects(switchOnEncryption(withKey(storage, 'a third key'), 'WALG_FILE_PREFIX'), /is encrypted with another key .*: change keys with a new prefix \(WALG_FILE_PREFIX\); nothing was changed$/);
    await new ArchiveIdentity(keyed, 'WALG_FILE_PREFIX').requireCluster(cluster('222'), SOURCE);

    // A keyless host's cached answer stands for RECHECK_MS, no longer.
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('222'), SOURCE);
    cache.verified = { ...cache.verified!, verifiedAt: Date.now() - RECHECK_MS };
    await assert.rejects(new ArchiveIdentity(storage, 'WALG_FILE_PREFIX', cache).requireCluster(cluster('222'), SOURCE), /is encrypted \(libsodium, key id/);
  });

  it('is recorded by the first writer in an archive whose record predates it, unless its newest backup is encrypted', async () => {
    const legacy = async (sentinelEncryption?: string) => {
      const { directory, storage } = await emptyArchive();
      mkdirSync(join(directory, 'walship'));
      writeFileSync(join(directory, 'walship', 'archive.json'), '{"SystemIdentifier": "333", "WalSegmentSize": 16777216}');
      if (sentinelEncryption) {
        mkdirSync(join(directory, 'basebackups_005'));
        writeFileSync(
          join(directory, 'basebackups_005', 'base_000000010000000000000002_backup_stop_sentinel.json'),
          JSON.stringify({ LSN: 16777256, FinishLSN: 16777500, SystemIdentifier: 333, Version: 2, Writer: 'walship', FinishTime: '2026-01-01T00:00:00Z', ...JSON.parse(sentinelEncryption) }),
        );
      }
      return { directory, storage };
    };
    const plain = await legacy();
    await new ArchiveIdentity(plain.storage, 'WALG_FILE_PREFIX').requireEncryption();
    assert.equal(recordOf(plain.directory).Encryption, 'none');
    assert.equal(recordOf(plain.directory).SystemIdentifier, '333');

    const keyed = await legacy();
    await new ArchiveIdentity(withKey(keyed.storage, 'k'), 'WALG_FILE_PREFIX').requireCluster(cluster('333'), SOURCE);
    assert.equal(recordOf(keyed.directory).Encryption, 'libsodium');

    const keyId = await keyIdOf(withKey(plain.storage, 'k').encryption!);
    const encrypted = await legacy(JSON.stringify({ Encryption: 'libsodium', EncryptionKeyId: keyId }));
    await assert.rejects(
      new ArchiveIdentity(encrypted.storage, 'WALG_FILE_PREFIX').requireCluster(cluster('333'), SOURCE),
      new RegExp(`is encrypted \\(libsodium, key id ${keyId}, as backup base_000000010000000000000002 records\\), but no key is configured here`),
    );
    assert.equal(recordOf(encrypted.directory).Encryption, undefined, 'nothing recorded by a refused host');
    await new ArchiveIdentity(withKey(encrypted.storage, 'k'), 'WALG_FILE_PREFIX').requireCluster(cluster('333'), SOURCE);
    assert.equal(recordOf(encrypted.directory).EncryptionKeyId, keyId);
  });

  it('leaves an archive without a record alone for a file that names no cluster', async () => {
    const { directory, storage } = await emptyArchive();
    await new ArchiveIdentity(storage, 'WALG_FILE_PREFIX').requireEncryption();
    assert.ok(!existsSync(join(directory, 'walship')), 'nothing recorded');
  });
});
