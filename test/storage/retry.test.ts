/**
 * The pieces under every cloud request: the retry policy (only transient
 * errors, bounded attempts and time, a timeout per attempt) and cutting a
 * stream into upload parts.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { readParts, uploadInParts } from '../../src/storage/parts.ts';
import { RequestTimeoutError, RetryPolicy, type RetrySettings } from '../../src/storage/retry.ts';

const quick: RetrySettings = { maxAttempts: 4, totalTimeMs: 10_000, requestTimeoutMs: 1_000, baseDelayMs: 1, maxDelayMs: 5 };
const transient = new Error('transient');
const isTransient = (error: unknown) => error === transient || error instanceof RequestTimeoutError;

describe('RetryPolicy', () => {
  test('retries transient errors until an attempt succeeds', async () => {
    let attempts = 0;
    const result = await new RetryPolicy(quick).run('test', isTransient, async () => {
      if (++attempts < 3) throw transient;
      return 'done';
    });
    assert.equal(result, 'done');
    assert.equal(attempts, 3);
  });

  test('gives up after maxAttempts with the last error', async () => {
    let attempts = 0;
    await assert.rejects(new RetryPolicy(quick).run('test', isTransient, async () => {
      attempts++;
      throw transient;
    }), transient);
    assert.equal(attempts, quick.maxAttempts);
  });

  test('never retries an error that is not transient', async () => {
    let attempts = 0;
    const fatal = new Error('bad credentials');
    await assert.rejects(new RetryPolicy(quick).run('test', isTransient, async () => {
      attempts++;
      throw fatal;
    }), fatal);
    assert.equal(attempts, 1);
  });

  test('starts no attempt past the total time limit', async () => {
    let attempts = 0;
    const slowBackoff = { ...quick, maxAttempts: 100, totalTimeMs: 300, baseDelayMs: 100, maxDelayMs: 100 };
    const started = Date.now();
    await assert.rejects(new RetryPolicy(slowBackoff).run('test', isTransient, async () => {
      attempts++;
      throw transient;
    }), transient);
    assert.ok(Date.now() - started < 1_000);
    assert.ok(attempts < 100);
  });

  test('times out an attempt that never answers, aborting its signal', async () => {
    const signals: AbortSignal[] = [];
    const settings = { ...quick, maxAttempts: 2, requestTimeoutMs: 50 };
    await assert.rejects(
      new RetryPolicy(settings).run('test', isTransient, (signal) => {
        signals.push(signal);
        return new Promise<never>(() => undefined);
      }),
      RequestTimeoutError,
    );
    assert.equal(signals.length, 2);
    assert.ok(signals.every((signal) => signal.aborted));
  });
});

describe('parts', () => {
  const collect = async (body: Readable, size: number) => {
    const parts: number[] = [];
    for await (const part of readParts(body, size)) parts.push(part.length);
    return parts;
  };

  test('cuts a stream into parts of exactly the part size, whatever its chunks', async () => {
    assert.deepEqual(await collect(Readable.from([Buffer.alloc(3), Buffer.alloc(10), Buffer.alloc(2)]), 4), [4, 4, 4, 3]);
    assert.deepEqual(await collect(Readable.from([Buffer.alloc(8)]), 4), [4, 4]);
    assert.deepEqual(await collect(Readable.from([]), 4), [0]);
  });

  test('an object of one part goes up whole; a larger one in numbered parts, then completes', async () => {
    const calls: string[] = [];
    const recorder = {
      putWhole: async (pieces: Buffer[]) => void calls.push(`whole ${Buffer.concat(pieces).length}`),
      begin: async () => void calls.push('begin'),
      putPart: async (partNumber: number, data: Buffer) => void calls.push(`part ${partNumber} ${data.length}`),
      complete: async (partCount: number) => void calls.push(`complete ${partCount}`),
      abort: async () => void calls.push('abort'),
    };
    await uploadInParts(Readable.from([Buffer.alloc(4)]), recorder, { partSize: 4, concurrency: 2 });
    assert.deepEqual(calls, ['whole 4']);
    calls.length = 0;
    await uploadInParts(Readable.from([Buffer.alloc(10)]), recorder, { partSize: 4, concurrency: 2 });
    assert.deepEqual(calls.sort(), ['begin', 'complete 3', 'part 1 4', 'part 2 4', 'part 3 2']);
  });

  test('an object of one part is handed over as the pieces it was read in, not a copy of them', async () => {
    const read = [Buffer.alloc(3, 1), Buffer.alloc(2, 2)];
    let whole: Buffer[] = [];
    await uploadInParts(Readable.from(read), {
      putWhole: async (pieces) => void (whole = pieces),
      begin: async () => undefined,
      putPart: async () => undefined,
      complete: async () => undefined,
      abort: async () => undefined,
    }, { partSize: 8, concurrency: 2 });
    assert.equal(whole.length, 2);
    whole.forEach((piece, index) => assert.equal(piece.buffer, read[index]!.buffer, `piece ${index} is the memory read`));
  });

  test('a failed part aborts the upload and fails the put', async () => {
    const calls: string[] = [];
    const failure = new Error('part failed');
    await assert.rejects(
      uploadInParts(Readable.from([Buffer.alloc(40)]), {
        putWhole: async () => undefined,
        begin: async () => undefined,
        putPart: async (partNumber) => {
          if (partNumber === 2) throw failure;
        },
        complete: async () => void calls.push('complete'),
        abort: async () => void calls.push('abort'),
      }, { partSize: 4, concurrency: 2 }),
      failure,
    );
    assert.deepEqual(calls, ['abort']);
  });
});
