// Copies of an encrypted archive that also holds logical dumps, on a real
// PostgreSQL 15, file storage to file storage: every object travels as
// stored (encrypted stays encrypted), is checked on arrival with the
// source's key, and the copy restores to a point in time with that key alone;
// dump sets are copied with their sentinel last, a damaged one is not, and
// --prune follows retention's deletion of a dump set.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { dumpSentinelKey } from '../../src/archive/layout.ts';
import { filesUnder } from '../support/files.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';

const KEY = randomBytes(32).toString('hex');

interface CopyJson {
  targets: { report?: { wal: { files: number }; backups: { copied: string[] }; dumps: { copied: string[] }; pruned: { dumps: string[] }; problems: string[] }; error?: string }[];
}

describe('copies of an encrypted archive with dump sets', () => {
  let root: string;
  let archive: string;
  let copyArchive: string;
  let mainConfig: string;
  let copyConfig: string;
  let primary: PostgresCluster;
  let restored: PostgresCluster | undefined;
  let dumps: string[] = [];

  const writeConfig = (path: string, settings: Record<string, string>) => {
    writeFileSync(path, Object.entries(settings).map(([name, value]) => `${name}: ${value}\n`).join(''), { mode: 0o600 });
    giveToPostgres(path);
  };
  const walship = (args: string[], config = mainConfig) =>
    run(walshipBinary, ['--config', config, ...args], { asPostgres: true, env: { ...process.env, ...libpq(primary), PATH: `${postgresBin}:${process.env.PATH}` } });
  const copyJson = async (args: string[] = []) => {
    const result = await walship(['copy', '--json', ...args]);
    return { ...result, json: JSON.parse(result.stdout || '{"targets":[]}') as CopyJson };
  };
  const newTarget = (name: string, settings: Record<string, string> = {}) => {
    const prefix = join(root, name);
    mkdirSync(prefix);
    giveToPostgres(prefix);
    const config = join(root, `${name}.yaml`);
    writeConfig(config, { WALG_FILE_PREFIX: prefix, ...settings });
    return { prefix, config };
  };

  before(async () => {
    root = makePostgresOwnedDirectory('walship-copy-encrypted-');
    archive = join(root, 'archive');
    mkdirSync(archive);
    giveToPostgres(archive);
    mainConfig = join(root, 'walship.yaml');
    writeConfig(mainConfig, { WALG_FILE_PREFIX: archive, WALG_LIBSODIUM_KEY: KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex', WALSHIP_PREFETCH: 'false' });
    ({ prefix: copyArchive, config: copyConfig } = newTarget('copy', { WALG_LIBSODIUM_KEY: KEY, WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' }));
    primary = await PostgresCluster.init({
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} --config ${mainConfig} wal-push %p`, wal_keep_size: '1GB' },
    });
    await primary.start();
    await primary.pgbench(['-i', '-s', '2', '-q']);
    await primary.sql('CREATE DATABASE shop');
    await primary.sql("CREATE TABLE coupons AS SELECT g AS id, 'C' || g AS code FROM generate_series(1, 3000) g", 'shop');
  });

  after(async () => {
    await restored?.destroy();
    await primary?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('copies the encrypted backup, WAL and dump sets as stored, and restores to a point in time from the copy with the key', async () => {
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 500) g');
    const target = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(501, 700) g');
    await primary.switchAndWaitArchived();
    for (let index = 0; index < 2; index++) {
      if (index > 0) await sleep(1100); // dump sets are named by the second
      const dumped = await walship(['dump-push', '--json']);
      assert.equal(dumped.code, 0, dumped.stderr);
    }

    const copied = await copyJson(['--to', copyConfig]);
    assert.equal(copied.code, 0, copied.stderr);
    const report = copied.json.targets[0]!.report!;
    assert.equal(report.backups.copied.length, 1);
    dumps = report.dumps.copied;
    assert.equal(dumps.length, 2, copied.stdout);
    // As stored: the copy's objects are the source's bytes, and those bytes are encrypted (no zstd frame at the start).
    const sourceFiles = filesUnder(archive).map((path) => path.slice(archive.length)).filter((path) => /^\/(wal_005|basebackups_005|dumps_005)\//.test(path));
    for (const path of sourceFiles) assert.ok(readFileSync(join(copyArchive, path)).equals(readFileSync(join(archive, path))), `${path} copied as stored`);
    const record = 'walship/archive.json';
    assert.ok(readFileSync(join(copyArchive, record)).equals(readFileSync(join(archive, record))), 'the copy records the same cluster and encryption');
    assert.match(readFileSync(join(copyArchive, record), 'utf8'), /"Encryption": "libsodium"/);
    const segment = sourceFiles.find((path) => /wal_005\/[0-9A-F]{24}\.zst$/.test(path))!;
    assert.notEqual(readFileSync(join(copyArchive, segment)).readUInt32LE(0), 0xfd2fb528, `${segment} is encrypted at the copy`);
    for (const dump of dumps) {
      const folderNewest = Math.max(...filesUnder(join(copyArchive, 'dumps_005', dump)).map((path) => statSync(path).mtimeMs));
      assert.ok(statSync(join(copyArchive, dumpSentinelKey(dump))).mtimeMs >= folderNewest, `${dump}'s sentinel is written last`);
    }
    const listed = await walship(['dump-list', '--json'], copyConfig);
    assert.deepEqual((JSON.parse(listed.stdout) as { dump_name?: string; name?: string }[]).length, 2, listed.stdout);

    const restoreRoot = makePostgresOwnedDirectory('walship-copy-encrypted-restore-');
    const dataDir = join(restoreRoot, 'data');
    // The main archive out of reach: the copy and its key are all there is.
    renameSync(archive, `${archive}.away`);
    try {
      const fetched = await walship(['backup-fetch', dataDir, 'LATEST', '--recovery-target-time', target, '--recovery-target-action', 'promote'], copyConfig);
      assert.equal(fetched.code, 0, fetched.stderr);
      restored = await PostgresCluster.adopt(dataDir, restoreRoot, { settings: { archive_mode: 'off' } });
      await restored.start();
      await restored.waitPromoted();
      assert.equal(await restored.sql('SELECT count(*) FROM marker'), '500');
      assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '200000');
      const fetchedDump = await walship(['dump-fetch', dumps[0]!, 'shop', join(restoreRoot, 'shop.dump')], copyConfig);
      assert.equal(fetchedDump.code, 0, fetchedDump.stderr);
    } finally {
      renameSync(`${archive}.away`, archive);
      await restored?.destroy();
      restored = undefined;
      rmSync(restoreRoot, { recursive: true, force: true });
    }
  });

  it('a second copy sends nothing; a copy configured with another key is refused before anything is copied', async () => {
    const again = await copyJson(['--to', copyConfig]);
    assert.equal(again.code, 0, again.stderr);
    const report = again.json.targets[0]!.report!;
    assert.deepEqual([report.wal.files, report.backups.copied, report.dumps.copied], [0, [], []]);

    const other = newTarget('other-key', { WALG_LIBSODIUM_KEY: randomBytes(32).toString('hex'), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' });
    const refused = await walship(['copy', '--to', other.config]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /copy to .*other-key\.yaml: WALG_LIBSODIUM_KEY is another key \(key id [0-9a-f]+\) than the source's .*: a copy holds the objects as the source stored them, so configure the source's key for it; nothing was copied/);
    assert.deepEqual(readdirSync(other.prefix), []);
  });

  it('never writes the sentinel of a dump set with an object that fails its check', async () => {
    const damagedTarget = newTarget('damaged');
    const object = filesUnder(join(archive, 'dumps_005', dumps[1]!)).find((path) => path.endsWith('.dump.zst'))!;
    const original = readFileSync(object);
    const damaged = Buffer.from(original);
    damaged[damaged.length >> 1]! ^= 0xff;
    writeFileSync(object, damaged);
    try {
      // A target without a key: copying needs none.
      const copied = await copyJson(['--to', damagedTarget.config]);
      assert.equal(copied.code, 1, copied.stderr);
      assert.match(copied.stderr, /\.dump\.zst is corrupt: SHA-256 .*: not copied/);
      assert.match(copied.stderr, new RegExp(`dump set ${dumps[1]} was not copied: no sentinel was written`));
      assert.deepEqual(copied.json.targets[0]!.report!.dumps.copied, [dumps[0]]);
    } finally {
      writeFileSync(object, original);
    }
    assert.ok(!existsSync(join(damagedTarget.prefix, dumpSentinelKey(dumps[1]!))));
    assert.ok(existsSync(join(damagedTarget.prefix, dumpSentinelKey(dumps[0]!))));
  });

  it('with --prune, deletes from the copy the dump set retention deleted; without it, nothing', async () => {
    // Retention on the main storage keeps the newest dump set.
    const removed = await walship(['delete', 'retain', '1', '--dumps', '--confirm']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.ok(!existsSync(join(archive, dumpSentinelKey(dumps[0]!))));

    const kept = await copyJson(['--to', copyConfig]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.ok(existsSync(join(copyArchive, dumpSentinelKey(dumps[0]!))));

    const pruned = await copyJson(['--to', copyConfig, '--prune']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(pruned.json.targets[0]!.report!.pruned.dumps, [dumps[0]]);
    assert.ok(!existsSync(join(copyArchive, dumpSentinelKey(dumps[0]!))));
    assert.ok(!existsSync(join(copyArchive, 'dumps_005', dumps[0]!)) || filesUnder(join(copyArchive, 'dumps_005', dumps[0]!)).length === 0);
    assert.ok(existsSync(join(copyArchive, dumpSentinelKey(dumps[1]!))), 'the newest dump set stays');
  });
});
