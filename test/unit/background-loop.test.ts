/** The one loop behind walship's background processes (the look-ahead pusher, the prefetcher). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { type BackgroundLoop, PidFile, runBackgroundLoop } from '../../src/wal/background.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-loop-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** The inotify watches this process holds, from its inotify instance's fdinfo. */
function inotifyWatches(): number {
  let watches = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:inotify') continue;
      watches += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((line) => line.startsWith('inotify wd:')).length;
    } catch {
      // the fd was closed meanwhile (readdir's own among them)
    }
  }
  return watches;
}

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
    // The shell's background child exits a second later, once the shell has become sleep, which never reaps it.
    // (A child that exits at once may be reaped by the shell itself before its exec.)
    const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (data: Buffer) => resolve(data.toString().trim()))));
      const deadline = Date.now() + 10_000;
      while (!readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z ') && Date.now() < deadline) await sleep(10);
      assert.match(readFileSync(`/proc/${zombie}/stat`, 'utf8'), /\) Z /, 'the child became a zombie');
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

  describe('waiting on its directories', () => {
    /** A loop that works the `.ready` files appearing in `directory`, as the pusher does, and notes when each was done. */
    function readyFilesLoop(directory: string, overrides: Partial<BackgroundLoop> = {}) {
      const doneAt = new Map<string, number>();
      const watchesWhileWorking: number[] = [];
      const loop = loopOver([], {
        pollMs: 60_000,
        watch: { directories: [directory], fallbackMs: 60_000 },
        idleExitMs: 4_000,
        nextBatch: async () => readdirSync(directory).filter((name) => name.endsWith('.ready') && !doneAt.has(name)),
        work: async (name) => {
          doneAt.set(name, Date.now());
          // libuv removes a watch closed from within its own event's callback once that callback returns.
          await sleep(20);
          watchesWhileWorking.push(inotifyWatches());
          return 'done';
        },
        ...overrides,
      });
      return { loop, doneAt, watchesWhileWorking };
    }

    it('wakes at once when a file appears, long before its fallback timeout, and leaves no watch behind', async () => {
      const directory = mkdtempSync(join(root, 'watched-'));
      const { loop, doneAt, watchesWhileWorking } = readyFilesLoop(directory);
      const watchesBefore = inotifyWatches();
      const running = runBackgroundLoop(loop);
      await sleep(300); // the loop has found nothing and waits
      const appearedAt = Date.now();
      writeFileSync(join(directory, 'a.ready'), '');
      await sleep(300);
      writeFileSync(join(directory, 'b.ready'), '');
      await running;
      // Without the watch, neither wait would end before the idle exit (4 s), and nothing would be done.
      const lag = (name: string, since: number) => doneAt.get(name)! - since;
      assert.ok(doneAt.has('a.ready') && doneAt.has('b.ready'), `done: ${[...doneAt.keys()]}`);
      assert.ok(lag('a.ready', appearedAt) < 2_000, `a.ready done ${lag('a.ready', appearedAt)} ms after it appeared`);
      assert.ok(lag('b.ready', appearedAt + 300) < 2_000, `b.ready done ${lag('b.ready', appearedAt + 300)} ms after it appeared`);
      // While it works, the loop's own writes there would wake it for nothing.
      assert.deepEqual(watchesWhileWorking, [watchesBefore, watchesBefore], 'no watch while working');
      assert.equal(inotifyWatches(), watchesBefore, 'the watch was closed on exit');
      assert.equal(existsSync(loop.lock.path), false);
    });

    it('still retries a failed item after the retry delay, with no change to wake it', async () => {
      const attempts: number[] = [];
      await runBackgroundLoop(
        loopOver([], {
          watch: { directories: [mkdtempSync(join(root, 'watched-'))], fallbackMs: 60_000 },
          pollMs: 20, // the pause after a failed batch
          retryAfterMs: 100,
          idleExitMs: 450,
          nextBatch: async ({ failedRecently }) => (failedRecently('x') ? [] : ['x']),
          work: async () => {
            attempts.push(Date.now());
            throw new Error('storage down');
          },
        }),
      );
      assert.ok(attempts.length >= 2 && attempts.length <= 5, `${attempts.length} attempts`);
      for (let i = 1; i < attempts.length; i++) assert.ok(attempts[i]! - attempts[i - 1]! >= 100, 'retried only after the retry delay');
    });

    it('looks again after its fallback timeout without a change, and exits when idle, on time', async () => {
      let looks = 0;
      const begun = Date.now();
      await runBackgroundLoop(
        loopOver([], {
          watch: { directories: [mkdtempSync(join(root, 'watched-'))], fallbackMs: 100 },
          pollMs: 1,
          idleExitMs: 550,
          nextBatch: async () => {
            looks++;
            return [];
          },
        }),
      );
      // A 1 ms poll would have looked hundreds of times; the fallback about six.
      assert.ok(looks >= 3 && looks <= 10, `${looks} looks`);
      assert.ok(Date.now() - begun < 2_000, `exited after ${Date.now() - begun} ms`);
    });

    it('polls as before where its directory cannot be watched', async () => {
      let looks = 0;
      const missing = join(root, `never-made-${counter++}`);
      await runBackgroundLoop(
        loopOver([], {
          watch: { directories: [missing], fallbackMs: 60_000 },
          pollMs: 20,
          idleExitMs: 400,
          nextBatch: async () => {
            looks++;
            return [];
          },
        }),
      );
      assert.ok(looks >= 5, `${looks} looks in 400 ms`);
    });
  });
});
