// Bounded work in flight: the bound holds, the first failure stops new work,
// and it is rethrown only once everything still in flight has settled.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachConcurrently, InFlight } from '../../src/util/concurrency.ts';

/** Tasks that record how many run at once, and which finished. */
function tracker() {
  const state = { running: 0, most: 0, started: [] as number[], finished: [] as number[] };
  const task = async (item: number, ms = 5 + (item % 3) * 5, failure?: Error) => {
    state.started.push(item);
    state.running++;
    state.most = Math.max(state.most, state.running);
    await sleep(ms);
    state.running--;
    if (failure) throw failure;
    state.finished.push(item);
  };
  return { state, task };
}

describe('InFlight', () => {
  it('keeps at most `limit` in flight and waits for all of them', async () => {
    const { state, task } = tracker();
    const inFlight = new InFlight(3);
    for (let item = 0; item < 12; item++) {
      await inFlight.room();
      inFlight.add(task(item));
    }
    await inFlight.done();
    assert.equal(state.most, 3);
    assert.equal(state.finished.length, 12);
  });

  it('stops new work at the first failure and rethrows it once everything in flight has settled', async () => {
    const { state, task } = tracker();
    const first = new Error('first');
    const inFlight = new InFlight(3);
    inFlight.add(task(0, 80));
    inFlight.add(task(1, 5, first));
    inFlight.add(task(2, 30, new Error('second')));
    await assert.rejects(async () => {
      for (let item = 3; item < 12; item++) {
        await inFlight.room();
        inFlight.add(task(item));
      }
    }, first);
    assert.deepEqual(state.started, [0, 1, 2], 'no new work once a task failed');
    assert.equal(state.running, 0, 'nothing is still running when the failure is thrown');
    assert.ok(state.finished.includes(0));
    await assert.rejects(inFlight.done(), first);
  });

  it('settled() waits for everything and never throws', async () => {
    const { state, task } = tracker();
    const inFlight = new InFlight(2);
    inFlight.add(task(0, 40));
    inFlight.add(task(1, 1, new Error('failed')));
    await inFlight.settled();
    assert.equal(state.running, 0);
  });
});

describe('forEachConcurrently', () => {
  it('runs every item within the limit', async () => {
    const { state, task } = tracker();
    await forEachConcurrently([...Array(10).keys()], 4, (item) => task(item));
    assert.equal(state.most, 4);
    assert.equal(state.finished.length, 10);
  });

  it('stops at the first failure and rethrows it after the running tasks settle', async () => {
    const { state, task } = tracker();
    const failure = new Error('item 1 failed');
    await assert.rejects(forEachConcurrently([...Array(10).keys()], 2, (item) => task(item, item === 0 ? 60 : 5, item === 1 ? failure : undefined)), failure);
    assert.equal(state.running, 0, 'nothing is still running');
    assert.ok(state.started.length < 10, 'no new task started after the failure');
  });
});
