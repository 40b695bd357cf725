// Prefetching wal-fetch without PostgreSQL: what is served, what never is,
// and that the background prefetcher starts, follows recovery and stops.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import { archiveKey } from '../../src/wal/prefetch.ts';
import { helperPidFiles } from '../../src/wal/spool.ts';
import { walshipBinary } from '../support/paths.ts';
import { pidInFile, removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

const MiB = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'walship-prefetch-'));
after(() => removeAfterHelpers(root));

let archive: string;
let dataDir: string;
let prefetchDir: string;

function walship(args: string[], env: Record<string, string> = {}) {
  // A PATH without walship on it: the prefetcher must still start.
  return run(walshipBinary, args, { cwd: dataDir, env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALG_DOWNLOAD_CONCURRENCY: '3', ...env } });
}

function segment(timeline: number, number: number): string {
  return segmentName(timeline, BigInt(number), MiB);
}

/** 1 MiB segments (a valid WAL segment size) with recognisable content after the page header. */
function segmentContent(name: string): Buffer {
  return asWalSegment(Buffer.concat([Buffer.alloc(40), Buffer.from(name), Buffer.alloc(MiB - 40 - name.length, name.charCodeAt(23))]));
}

async function archiveSegments(timeline: number, first: number, count: number): Promise<void> {
  for (let number = first; number < first + count; number++) {
    const name = segment(timeline, number);
    writeFileSync(join(dataDir, 'pg_wal', name), segmentContent(name));
    const result = await walship(['wal-push', `pg_wal/${name}`], { TOTAL_BG_UPLOADED_LIMIT: '0' });
    assert.equal(result.code, 0, result.stderr);
  }
}

/** Alive and not a zombie (a container's init may never reap it). */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function prefetcherPid(): number | undefined {
  return pidInFile(join(prefetchDir, '.prefetcher.pid'));
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function prefetched(): string[] {
  return existsSync(prefetchDir) ? readdirSync(prefetchDir).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort() : [];
}

/** A server run's postmaster.pid, as PostgreSQL writes it: this test's pid stands for the postmaster. */
function writePostmasterPid(start: number): string {
  writeFileSync(join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n${start}\n5432\n/tmp\n\n`);
  return `${process.pid}-${start}`;
}

/** The prefetch area of the server run `recovery` on the test's archive. */
function areaOf(recovery: string, archivePath = archive): string {
  const identity = storageSpecFrom(new Config({ WALG_FILE_PREFIX: archivePath })).identity;
  return join(dataDir, '..', '.walship-data', 'prefetch', archiveKey(identity), recovery);
}

beforeEach(() => {
  const case_ = mkdtempSync(join(root, 'case-'));
  archive = join(case_, 'archive');
  dataDir = join(case_, 'data');
  mkdirSync(archive);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dataDir, 'recovery.signal'), '');
  prefetchDir = areaOf(writePostmasterPid(1_700_000_000));
});

afterEach(async () => {
  const pid = prefetcherPid();
  if (pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already exited
    }
  }
});

describe('prefetching wal-fetch', () => {
  it('downloads the next segments in the background and serves them from there', async () => {
    await archiveSegments(1, 1, 8);
    const first = await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG']);
    assert.equal(first.code, 0, first.stderr);
    // The first wal-fetch of a recovery says where its area is; the next ones say nothing of it.
    assert.equal(first.stderr.split('\n').filter((line) => line.includes(`prefetching this recovery's WAL into ${prefetchDir}`)).length, 1, first.stderr);
    await waitFor(() => prefetched().length === 3, 'three prefetched segments');
    assert.deepEqual(prefetched(), [segment(1, 2), segment(1, 3), segment(1, 4)]);
    assert.ok(prefetcherPid(), 'a prefetcher holds the lock');

    for (let number = 2; number <= 8; number++) {
      const name = segment(1, number);
      await waitFor(() => prefetched().includes(name), `${name} to be prefetched`);
      const served = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
      assert.equal(served.code, 0, served.stderr);
      assert.match(served.stderr, /served from the prefetch area/);
      assert.doesNotMatch(served.stderr, /prefetching this recovery's WAL/);
      assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(name)));
    }
    // Past the end of the archive: "not found", and nothing stale is left behind.
    const end = await walship(['wal-fetch', segment(1, 9), 'pg_wal/RECOVERYXLOG']);
    assert.equal(end.code, 74);
    assert.deepEqual(prefetched(), []);
  });

  it('never serves a file still being written, nor a segment of another timeline', async () => {
    await archiveSegments(2, 5, 1);
    mkdirSync(join(prefetchDir, 'running'), { recursive: true });
    writeFileSync(join(prefetchDir, 'running', segment(2, 5)), 'partial');
    writeFileSync(join(prefetchDir, segment(1, 5)), 'timeline 1 content');
    const result = await walship(['wal-fetch', segment(2, 5), 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /served from the prefetch area/);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(segment(2, 5))));
  });

  it('never serves a segment prefetched for another archive or an earlier recovery, and removes the earlier recovery\'s area', async () => {
    await archiveSegments(1, 5, 1);
    const deadPostmaster = `4194303-1600000000`; // above the default pid_max: no such process
    const earlier = areaOf(deadPostmaster);
    const otherArchive = areaOf(deadPostmaster.replace('4194303', String(process.pid)), join(root, 'elsewhere'));
    for (const area of [earlier, otherArchive]) {
      mkdirSync(area, { recursive: true });
      writeFileSync(join(area, segment(1, 5)), 'stale content');
    }
    const result = await walship(['wal-fetch', segment(1, 5), 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /served from the prefetch area/);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(segment(1, 5))));
    assert.equal(existsSync(earlier), false, "the earlier recovery's area is removed");
    assert.equal(existsSync(otherArchive), true, "another archive's area is not this recovery's to remove");
  });

  it('waits for the prefetcher\'s download of the segment asked for instead of downloading it again', async () => {
    await archiveSegments(1, 1, 1);
    const name = segment(1, 1);
    // This test process plays a prefetcher that is downloading the segment.
    mkdirSync(join(prefetchDir, 'running'), { recursive: true });
    const start = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(join(prefetchDir, '.prefetcher.pid'), `${process.pid} ${start}`);
    writeFileSync(join(prefetchDir, 'running', name), '');
    const fetching = walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
    await sleep(1500);
    writeFileSync(join(prefetchDir, name), segmentContent(name));
    rmSync(join(prefetchDir, 'running', name));
    const result = await fetching;
    rmSync(join(prefetchDir, '.prefetcher.pid'));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /served from the prefetch area/);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(name)));
  });

  it('follows recovery on its own: segments taken without wal-fetch (the shell fast path) move its window', async () => {
    await archiveSegments(1, 1, 8);
    assert.equal((await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'])).code, 0);
    await waitFor(() => prefetched().length === 3, 'three prefetched segments');
    for (const number of [2, 3]) rmSync(join(prefetchDir, segment(1, number)));
    await waitFor(() => prefetched().includes(segment(1, 6)), 'the window to move on to the sixth segment');
    assert.deepEqual(prefetched(), [segment(1, 4), segment(1, 5), segment(1, 6)]);
  });

  it('says in one line why prefetching is off, and still restores', async () => {
    await archiveSegments(1, 1, 1);
    const inside = await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'], { WALSHIP_PREFETCH_DIR: join(dataDir, 'prefetch') });
    assert.equal(inside.code, 0, inside.stderr);
    assert.match(inside.stderr, /^walship wal-fetch: WARNING: prefetching is off: WALSHIP_PREFETCH_DIR=\S+\/data\/prefetch is inside the data directory, .*; set it to a directory outside\n$/);
    const blocker = join(dataDir, '..', 'blocker');
    writeFileSync(blocker, '');
    const unavailable = await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'], { WALSHIP_PREFETCH_DIR: join(blocker, 'prefetch') });
    assert.equal(unavailable.code, 0, unavailable.stderr);
    assert.match(unavailable.stderr, /^walship wal-fetch: WARNING: prefetching is off: the spool directory is unavailable: cannot create \S+\/blocker\/prefetch \(ENOTDIR\); set WALSHIP_PREFETCH_DIR to .*\n$/);
    assert.equal(existsSync(join(dataDir, 'prefetch')), false);
  });

  it('cleans up segments older than the one requested', async () => {
    await archiveSegments(1, 1, 3);
    mkdirSync(prefetchDir, { recursive: true });
    for (const stale of [segment(1, 0), segment(1, 1)]) writeFileSync(join(prefetchDir, stale), 'old');
    assert.equal((await walship(['wal-fetch', segment(1, 2), 'pg_wal/RECOVERYXLOG'])).code, 0);
    await waitFor(() => !prefetched().includes(segment(1, 0)) && !prefetched().includes(segment(1, 1)), 'stale segments removed');
    await waitFor(() => prefetched().includes(segment(1, 3)), 'the next segment');
  });

  it('can be turned off, and stays off for pg_rewind, which restores to pg_wal/<name>', async () => {
    await archiveSegments(1, 1, 3);
    assert.equal((await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'], { WALSHIP_PREFETCH: 'false' })).code, 0);
    assert.equal((await walship(['wal-fetch', segment(1, 1), `pg_wal/${segment(1, 1)}`])).code, 0);
    await sleep(500);
    assert.equal(existsSync(prefetchDir) ? readdirSync(prefetchDir).length : 0, 0);
  });

  it('removes what a prefetcher of the single-area layout left directly in prefetch/, once none runs', async () => {
    await archiveSegments(1, 1, 1);
    const root = join(dataDir, '..', '.walship-data', 'prefetch');
    mkdirSync(join(root, 'running'), { recursive: true });
    const leftovers = [segment(1, 1), '.requested', 'prefetch.log', join('running', segment(1, 2)), `.${segment(1, 3)}.walship-tmp-4194303-0`];
    for (const leftover of leftovers) writeFileSync(join(root, leftover), 'stale');
    writeFileSync(join(root, '.prefetcher.pid'), '4194303 1'); // above the default pid_max: no such process
    const result = await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /served from the prefetch area/);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(segment(1, 1))));
    assert.deepEqual(readdirSync(root), [basename(dirname(prefetchDir))], 'only the archive\'s areas are left');
  });

  it('leaves them while a prefetcher of that layout runs, and names its pid file among the helpers', async () => {
    await archiveSegments(1, 1, 1);
    const spool = join(dataDir, '..', '.walship-data');
    const root = join(spool, 'prefetch');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, segment(1, 1)), 'stale');
    // This test process plays the old prefetcher.
    const start = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(join(root, '.prefetcher.pid'), `${process.pid} ${start}`);
    assert.deepEqual(helperPidFiles(spool), [join(root, '.prefetcher.pid')]);
    const result = await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG']);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(segmentContent(segment(1, 1))));
    assert.equal(readFileSync(join(root, segment(1, 1)), 'utf8'), 'stale');
    rmSync(join(root, '.prefetcher.pid'));
  });

  it('leaves the prefetcher to exit by itself once recovery stops asking', async () => {
    await archiveSegments(1, 1, 2);
    assert.equal((await walship(['wal-fetch', segment(1, 1), 'pg_wal/RECOVERYXLOG'])).code, 0);
    await waitFor(() => prefetched().includes(segment(1, 2)), 'the next segment');
    const pid = prefetcherPid();
    assert.ok(pid);
    await waitFor(() => !existsSync(join(prefetchDir, '.prefetcher.pid')), 'the prefetcher to exit', 30_000);
    await waitFor(() => !isRunning(pid), 'the prefetcher process to end');
  });
});
