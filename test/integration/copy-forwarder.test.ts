// The built binary without PostgreSQL: wal-push's queue for the copies
// survives a forwarder killed while the copy is down and is bounded, and
// wal-fetch asks a copy only for the cluster's own WAL, never turning a
// failure of the main storage into "not in the archive".
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { walshipBinary } from '../support/paths.ts';
import { pidInFile, run } from '../support/processes.ts';
import { asWalSegment, TEST_SYSTEM_IDENTIFIER } from '../support/wal.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-copy-forwarder-'));
after(() => {
  for (const pid of forwarders) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited already
    }
  }
  rmSync(root, { recursive: true, force: true });
});
const forwarders = new Set<number>();

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const segment = (number: number) => `00000001000000000000000${number}`;

/** A data directory of its own with pg_wal/archive_status, a main archive, and a copy's config file. */
function cluster(name: string, copy: Record<string, string>) {
  const dataDir = join(root, name, 'data');
  const archive = join(root, name, 'archive');
  const copyConfig = join(root, name, 'copy.json');
  mkdirSync(join(dataDir, 'pg_wal', 'archive_status'), { recursive: true });
  mkdirSync(archive);
  writeFileSync(copyConfig, JSON.stringify(copy));
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_COPIES: copyConfig, WALG_LOG_LEVEL: 'NORMAL' };
  const push = (number: number, extra: Record<string, string> = {}) => {
    writeFileSync(join(dataDir, 'pg_wal', segment(number)), asWalSegment(Buffer.alloc(1 << 20, number)));
    return run(walshipBinary, ['wal-push', `pg_wal/${segment(number)}`], { cwd: dataDir, env: { ...env, ...extra } });
  };
  const records = () => {
    const archived = join(root, name, '.walship-data', 'archived');
    return join(archived, readdirSync(archived)[0]!);
  };
  return { dataDir, archive, copyConfig, env, push, records };
}

describe("wal-push's queue for the copies", () => {
  it('keeps the files for a copy that is down across a killed forwarder, and delivers them once it is back', async () => {
    const copyArchive = join(root, 'resume-copy');
    const { push, records } = cluster('resume', { WALG_FILE_PREFIX: copyArchive });
    // The copy's directory is missing: it is down.
    for (const number of [1, 2]) assert.equal((await push(number)).code, 0);
    const queue = join(records(), 'copies');
    await until(() => pidInFile(join(records(), '.forwarder.pid')) !== undefined, 'the forwarder to start');
    const [directory] = readdirSync(queue).filter((entry) => !entry.startsWith('.'));
    assert.deepEqual(readdirSync(join(queue, directory!)).sort(), [segment(1), segment(2)]);
    process.kill(pidInFile(join(records(), '.forwarder.pid'))!, 'SIGKILL');

    mkdirSync(copyArchive);
    assert.equal((await push(3)).code, 0);
    await until(() => [1, 2, 3].every((number) => existsSync(join(copyArchive, 'wal_005', `${segment(number)}.zst`))), 'the copy to catch up');
    forwarders.add(pidInFile(join(records(), '.forwarder.pid')) ?? 0);
    const record = JSON.parse(readFileSync(join(copyArchive, 'walship', 'archive.json'), 'utf8')) as { SystemIdentifier: string };
    assert.equal(record.SystemIdentifier, TEST_SYSTEM_IDENTIFIER, "the copy carries the archive's identity");
    await until(() => readdirSync(join(queue, directory!)).length === 0, 'the queue to empty');
  });

  it('follows WALSHIP_COPIES as wal-push has it: a copy added is served at once, one removed loses its queue', async () => {
    const added = join(root, 'follow-added');
    mkdirSync(added);
    const { push, records, copyConfig: removed } = cluster('follow', { WALG_FILE_PREFIX: join(root, 'follow-removed-missing') });
    assert.equal((await push(1)).code, 0);
    await until(() => pidInFile(join(records(), '.forwarder.pid')) !== undefined, 'the forwarder to start');
    const forwarder = pidInFile(join(records(), '.forwarder.pid'))!;
    forwarders.add(forwarder);
    const queue = join(records(), 'copies');
    assert.equal(readdirSync(queue).filter((entry) => !entry.startsWith('.')).length, 1);

    const addedConfig = join(root, 'follow-added.json');
    writeFileSync(addedConfig, JSON.stringify({ WALG_FILE_PREFIX: added }));
    assert.equal((await push(2, { WALSHIP_COPIES: addedConfig })).code, 0);
    await until(() => existsSync(join(added, 'wal_005', `${segment(2)}.zst`)), 'the added copy to get the new file');
    assert.equal(pidInFile(join(records(), '.forwarder.pid')), forwarder, `the same forwarder serves it: ${readFileSync(join(records(), 'forwarder.log'), 'utf8')}`);
    await until(() => readdirSync(queue).filter((entry) => !entry.startsWith('.')).length === 1, `the queue of ${removed} to go`);
    assert.match(readFileSync(join(records(), 'forwarder.log'), 'utf8'), /dropped 1 queued WAL files of copies no longer in WALSHIP_COPIES/);
  });

  it('keeps at most WALSHIP_COPY_BACKLOG files for a copy that is down, and says which it left to walship copy', async () => {
    const { push, records } = cluster('bounded', { WALG_FILE_PREFIX: join(root, 'bounded-copy-missing') });
    for (const number of [1, 2, 3, 4]) assert.equal((await push(number, { WALSHIP_COPY_BACKLOG: '2' })).code, 0);
    const log = join(records(), 'forwarder.log');
    await until(() => existsSync(log) && /left to walship copy/.test(readFileSync(log, 'utf8')), 'the forwarder to trim its backlog');
    forwarders.add(pidInFile(join(records(), '.forwarder.pid')) ?? 0);
    const queue = join(records(), 'copies');
    const [directory] = readdirSync(queue).filter((entry) => !entry.startsWith('.'));
    await until(() => readdirSync(join(queue, directory!)).length <= 2, 'the queue to be cut');
    assert.match(readFileSync(log, 'utf8'), /more than WALSHIP_COPY_BACKLOG=2: the oldest \d+, 000000010000000000000001 to/);
    assert.ok(readdirSync(join(queue, directory!)).includes(segment(4)), 'the newest stays');
  });
});

describe('wal-fetch from a copy', () => {
  /** A data directory whose global/pg_control names `systemIdentifier`. */
  function dataDirectoryOf(systemIdentifier: string): string {
    const dataDir = mkdtempSync(join(root, 'restored-'));
    mkdirSync(join(dataDir, 'global'));
    mkdirSync(join(dataDir, 'pg_wal'));
    const control = Buffer.alloc(32);
    control.writeBigUInt64LE(BigInt(systemIdentifier), 0);
    control.writeUInt32LE(1300, 8);
    writeFileSync(join(dataDir, 'global', 'pg_control'), control);
    return dataDir;
  }

  /** An archive holding segments pushed by wal-push, so its identity is recorded. */
  async function archiveWith(numbers: number[], systemIdentifier = TEST_SYSTEM_IDENTIFIER): Promise<string> {
    const archive = mkdtempSync(join(root, 'archive-'));
    const source = mkdtempSync(join(root, 'pushed-'));
    for (const number of numbers) {
      writeFileSync(join(source, segment(number)), asWalSegment(Buffer.alloc(1 << 20, number), systemIdentifier));
      const pushed = await run(walshipBinary, ['wal-push', join(source, segment(number))], { env: { PATH: process.env.PATH, WALG_FILE_PREFIX: archive } });
      assert.equal(pushed.code, 0, pushed.stderr);
    }
    return archive;
  }

  const fetch = (dataDir: string, name: string, main: string, copies: string[]) => {
    const configs = copies.map((archive, index) => {
      const path = join(root, `copy-${Date.now()}-${index}.json`);
      writeFileSync(path, JSON.stringify({ WALG_FILE_PREFIX: archive }));
      return path;
    });
    return run(walshipBinary, ['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], {
      cwd: dataDir,
      env: { PATH: process.env.PATH, WALG_FILE_PREFIX: main, WALSHIP_COPIES: configs.join(','), WALSHIP_PREFETCH: 'false', WALG_LOG_LEVEL: 'NORMAL' },
    });
  };

  it("restores what the main storage lacks from a copy of the cluster's own archive", async () => {
    const main = await archiveWith([1]);
    const copy = await archiveWith([1, 2]);
    const dataDir = dataDirectoryOf(TEST_SYSTEM_IDENTIFIER);
    const fetched = await fetch(dataDir, segment(2), main, [copy]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stderr, /WARNING: restored 000000010000000000000002 from copy .*: the main storage does not hold it/);
    assert.equal(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).at(-1), 2);
  });

  it("never reads another cluster's copy, or one without an identity: the main storage's answer stands", async () => {
    const main = await archiveWith([1]);
    const other = await archiveWith([1, 2], '7000000000000000999');
    const dataDir = dataDirectoryOf(TEST_SYSTEM_IDENTIFIER);
    const fetched = await fetch(dataDir, segment(2), main, [other]);
    assert.equal(fetched.code, 74, fetched.stderr);
    assert.match(fetched.stderr, /not asking copy .*: it holds cluster 7000000000000000999's archive, and this is cluster 7000000000000000001/);
    assert.equal(existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')), false);
  });

  it('restores from a copy when the main storage fails, and stays an error (never 74) when the copy lacks the file', async () => {
    const copy = await archiveWith([1]);
    const dataDir = dataDirectoryOf(TEST_SYSTEM_IDENTIFIER);
    const unreachable = join(root, 'not-mounted');
    const restored = await fetch(dataDir, segment(1), unreachable, [copy]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stderr, /restored 000000010000000000000001 from copy .*: the main storage failed: WALG_FILE_PREFIX=.* does not exist/);
    const missing = await fetch(dataDir, segment(2), unreachable, [copy]);
    assert.equal(missing.code, 255, missing.stderr);
    assert.match(missing.stderr, /does not exist/);
  });
});
