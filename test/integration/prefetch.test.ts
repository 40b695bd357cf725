// Prefetching wal-fetch without PostgreSQL: what is served, what never is,
// and that the background prefetcher starts, follows recovery and stops.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { walshipBinary } from '../support/paths.ts';
import { pidInFile, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

const MiB = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'walship-prefetch-'));
after(() => rmSync(root, { recursive: true, force: true }));

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

beforeEach(() => {
  const case_ = mkdtempSync(join(root, 'case-'));
  archive = join(case_, 'archive');
  dataDir = join(case_, 'data');
  prefetchDir = join(case_, '.walship-data', 'prefetch');
  mkdirSync(archive);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dataDir, 'recovery.signal'), '');
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
    await waitFor(() => prefetched().length === 3, 'three prefetched segments');
    assert.deepEqual(prefetched(), [segment(1, 2), segment(1, 3), segment(1, 4)]);
    assert.ok(prefetcherPid(), 'a prefetcher holds the lock');

    for (let number = 2; number <= 8; number++) {
      const name = segment(1, number);
      await waitFor(() => prefetched().includes(name), `${name} to be prefetched`);
      const served = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], { WALG_LOG_LEVEL: 'DEVEL' });
      assert.equal(served.code, 0, served.stderr);
      assert.match(served.stderr, /served from the prefetch area/);
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
