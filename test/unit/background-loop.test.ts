/** The one loop behind walship's background processes (the look-ahead pusher, the prefetcher). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { type BackgroundLoop, PidFile, runBackgroundLoop } from '../../src/wal/background.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-loop-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A loop over `items` that does each one once, quickly; the test overrides what it needs. */
function loopOver(items: string[], overrides: Partial<BackgroundLoop> = {}): BackgroundLoop & { done: string[] } {
  const done: string[] = [];
  return {
    done,
    lock: new PidFile(join(root, `loop-${counter++}.pid`)),
    concurrency: 2,
    pollMs: 5,
    idleExitMs: 150,
    retryAfterMs: 1000,
    afterFailedBatch: 'wait',
    nextBatch: async () => items.filter((item) => !done.includes(item)),
    work: async (item) => {
      done.push(item);
      return 'done';
    },
    failed: async () => undefined,
    ...overrides,
  };
}

describe('PidFile', () => {
  it('takes a claim whose holder was killed and is still a zombie, not yet reaped', async () => {
    // The shell's background child exits at once; its parent, now sleep, never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (data: Buffer) => resolve(data.toString().trim()))));
      const deadline = Date.now() + 5000;
      while (!readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z ') && Date.now() < deadline) await sleep(10);
      const start = readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      const claim = new PidFile(join(root, `zombie-${counter++}.pid`));
      writeFileSync(claim.path, `${zombie} ${start}`);
      assert.equal(await claim.holder(), undefined);
      assert.ok(await claim.acquire());
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('runBackgroundLoop', () => {
  it('does nothing while another process holds its lock', async () => {
    const loop = loopOver(['a']);
    assert.ok(await new PidFile(loop.lock.path).acquire());
    await runBackgroundLoop(loop);
    assert.deepEqual(loop.done, []);
    assert.ok(existsSync(loop.lock.path), 'the holder keeps its lock');
  });

  it('works every item, at most `concurrency` at once, then exits once idle and releases its lock', async () => {
    let running = 0;
    let mostAtOnce = 0;
    const done: string[] = [];
    const loop = loopOver(['a', 'b', 'c', 'd', 'e'], {
      concurrency: 2,
      nextBatch: async () => ['a', 'b', 'c', 'd', 'e'].filter((item) => !done.includes(item)),
      work: async (item) => {
        running++;
        mostAtOnce = Math.max(mostAtOnce, running);
        await sleep(10);
        running--;
        done.push(item);
        return 'done';
      },
    });
    let started = false;
    const startedBeforeFirstBatch = { ...loop, start: async () => void (started = true) };
    const begun = Date.now();
    await runBackgroundLoop(startedBeforeFirstBatch);
    assert.ok(started);
    assert.deepEqual(done.sort(), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(mostAtOnce, 2);
    assert.ok(Date.now() - begun >= 150, 'it waited for more work before exiting');
    assert.equal(existsSync(loop.lock.path), false);
  });

  it('stays alive while the batches report progress', async () => {
    let calls = 0;
    const begun = Date.now();
    await runBackgroundLoop(
      loopOver([], {
        nextBatch: async ({ progress }) => {
          if (++calls * 5 < 400) progress(); // news for about 400 ms, then none
          return [];
        },
      }),
    );
    assert.ok(Date.now() - begun >= 400, `exited after ${Date.now() - begun} ms`);
  });

  it('leaves a failed item out while it failed recently, and reports each failure', async () => {
    const attempts: number[] = [];
    const reported: string[] = [];
    await runBackgroundLoop(
      loopOver([], {
        retryAfterMs: 100,
        idleExitMs: 350,
        nextBatch: async ({ failedRecently }) => (failedRecently('x') ? [] : ['x']),
        work: async () => {
          attempts.push(Date.now());
          throw new Error('storage down');
        },
        failed: async (item, error) => void reported.push(`${item}: ${(error as Error).message}`),
      }),
    );
    assert.ok(attempts.length >= 2 && attempts.length <= 4, `${attempts.length} attempts`);
    for (let i = 1; i < attempts.length; i++) assert.ok(attempts[i]! - attempts[i - 1]! >= 100, 'retried only after the retry delay');
    assert.deepEqual(new Set(reported), new Set(['x: storage down']));
  });

  it("stops after a batch in which nothing succeeded, when told to leave the work to others", async () => {
    const worked: string[] = [];
    const loop = loopOver([], {
      afterFailedBatch: 'stop',
      idleExitMs: 5_000,
      nextBatch: async () => ['a', 'b'],
      work: async (item) => {
        worked.push(item);
        if (item === 'a') return 'skipped';
        throw new Error('refused');
      },
    });
    const begun = Date.now();
    await runBackgroundLoop(loop);
    assert.deepEqual(worked.sort(), ['a', 'b']);
    assert.ok(Date.now() - begun < 1_000, 'it stopped at once');
    assert.equal(existsSync(loop.lock.path), false);
  });
});
