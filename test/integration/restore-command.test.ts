// The restore_command backup-fetch writes, run by /bin/sh as PostgreSQL runs
// it: a complete prefetched segment of this archive and this server run is
// handed over without starting walship; everything else goes to wal-fetch,
// with its exit codes.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import { archiveKey } from '../../src/wal/prefetch.ts';
import { restoreCommandWithFastPath } from '../../src/wal/restore-command.ts';
import { walshipBinary } from '../support/paths.ts';
import { removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

const MiB = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'walship-restore-command-'));
after(() => removeAfterHelpers(root));

let archive: string;
let dataDir: string;
let prefetchRoot: string;
const recovery = `${process.pid}-1700000000`;

const segment = (timeline: number, number: number) => segmentName(timeline, BigInt(number), MiB);

function archivedContent(name: string): Buffer {
  return asWalSegment(Buffer.concat([Buffer.alloc(40), Buffer.from(`archived ${name}`), Buffer.alloc(MiB - 49 - name.length)]));
}

const env = () => ({ PATH: '/usr/bin:/bin', WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', WALG_LOG_LEVEL: 'DEVEL' });

/** The area of `archivePath`'s server run `run` under the prefetch root. */
function area(run = recovery, archivePath = archive): string {
  return join(prefetchRoot, archiveKey(storageSpecFrom(new Config({ WALG_FILE_PREFIX: archivePath })).identity), run);
}

/** Runs the restore_command for `name` to `destination` as PostgreSQL does: %f and %p substituted, /bin/sh -c, in the data directory. */
async function restoreCommand(name: string, destination = 'pg_wal/RECOVERYXLOG') {
  const identity = storageSpecFrom(new Config({ WALG_FILE_PREFIX: archive })).identity;
  const command = restoreCommandWithFastPath([walshipBinary, 'wal-fetch'], prefetchRoot, identity);
  return run('/bin/sh', ['-c', command.replaceAll('%f', name).replaceAll('%p', destination)], { cwd: dataDir, env: env() });
}

/** Whether the last run started walship: at DEVEL it says so first thing. */
const walshipRan = (stderr: string) => /walship wal-fetch: DEBUG: walship /.test(stderr);

function prefetch(directory: string, name: string, content: Buffer | string): void {
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, name), content);
}

beforeEach(async () => {
  const case_ = mkdtempSync(join(root, 'case-'));
  archive = join(case_, 'archive');
  dataDir = join(case_, 'data');
  prefetchRoot = join(case_, '.walship-data', 'prefetch');
  mkdirSync(archive);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dataDir, 'postmaster.pid'), `${recovery.split('-')[0]}\n${dataDir}\n${recovery.split('-')[1]}\n5432\n/tmp\n\n`);
  for (const name of [segment(1, 1), segment(2, 1)]) {
    writeFileSync(join(dataDir, 'pg_wal', name), archivedContent(name));
    const pushed = await run(walshipBinary, ['wal-push', `pg_wal/${name}`], { cwd: dataDir, env: env() });
    assert.equal(pushed.code, 0, pushed.stderr);
    rmSync(join(dataDir, 'pg_wal', name));
  }
});

describe('the restore_command fast path', () => {
  it('hands over a prefetched segment of this archive and server run without starting walship', async () => {
    const name = segment(1, 1);
    prefetch(area(), name, 'prefetched content');
    const result = await restoreCommand(name);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(walshipRan(result.stderr), false, result.stderr);
    assert.equal(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG'), 'utf8'), 'prefetched content');
    assert.equal(existsSync(join(area(), name)), false, 'taken out of the area');
  });

  it('runs wal-fetch on a miss: the segment from the archive, or 74 when the archive lacks it', async () => {
    const found = await restoreCommand(segment(1, 1));
    assert.equal(found.code, 0, found.stderr);
    assert.ok(walshipRan(found.stderr));
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(archivedContent(segment(1, 1))));
    const missing = await restoreCommand(segment(1, 2));
    assert.equal(missing.code, 74, missing.stderr);
    const history = await restoreCommand('00000003.history');
    assert.equal(history.code, 74, history.stderr);
  });

  it('keeps the error exit code of wal-fetch', async () => {
    rmSync(archive, { recursive: true });
    writeFileSync(archive, 'not a directory');
    const result = await restoreCommand(segment(1, 1));
    assert.notEqual(result.code, 0);
    assert.notEqual(result.code, 74, 'an error is never "not in the archive"');
  });

  it("never serves another archive's segment, an earlier server run's, a partial one, or another timeline's", async () => {
    const name = segment(2, 1);
    prefetch(area(recovery, join(root, 'another-archive')), name, 'another archive');
    prefetch(area(`${process.pid}-1600000000`), name, 'an earlier server run');
    prefetch(join(area(), 'running'), name, 'being downloaded');
    prefetch(area(), `.${name}.walship-tmp-${process.pid}-0`, 'being written');
    prefetch(area(), segment(1, 1), 'timeline 1, same position');
    const result = await restoreCommand(name);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(walshipRan(result.stderr), 'a miss: wal-fetch ran');
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(archivedContent(name)));
  });

  it("leaves pg_rewind's restores to pg_wal/<name>, and a server-less directory, to wal-fetch", async () => {
    const name = segment(1, 1);
    prefetch(area(), name, 'prefetched content');
    const rewind = await restoreCommand(name, `pg_wal/${name}`);
    assert.equal(rewind.code, 0, rewind.stderr);
    assert.ok(walshipRan(rewind.stderr));
    assert.ok(readFileSync(join(dataDir, 'pg_wal', name)).equals(archivedContent(name)));
    rmSync(join(dataDir, 'postmaster.pid'));
    const noServer = await restoreCommand(name);
    assert.equal(noServer.code, 0, noServer.stderr);
    assert.ok(walshipRan(noServer.stderr));
    assert.ok(existsSync(join(area(), name)), 'the prefetched file stays where it was');
  });

  it('never copies: with %p on another file system, wal-fetch runs and nothing partial is left', { skip: !existsSync('/dev/shm') && 'no /dev/shm' }, async () => {
    const name = segment(1, 1);
    prefetch(area(), name, 'prefetched content');
    const elsewhere = mkdtempSync('/dev/shm/walship-restore-command-');
    try {
      const result = await restoreCommand(name, join(elsewhere, 'RECOVERYXLOG'));
      assert.equal(result.code, 0, result.stderr);
      assert.ok(walshipRan(result.stderr), 'the hard link fails across file systems, so wal-fetch serves it');
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
