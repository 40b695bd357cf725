// A program's output read into reused memory (startProgramWithReusedOutput)
// and fed to a pipeline in each read's own call: every byte arrives intact
// whatever the stages keep, small writes are gathered, and the reads pause
// while the consumer is behind.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { startProgramWithReusedOutput } from '../../src/postgres/programs.ts';
import { DigestStage } from '../../src/stages/checksum.ts';
import { coalesceStage } from '../../src/stages/coalesce.ts';
import { Pipeline, type Stage, type WatchStage } from '../../src/stages/pipeline.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-reused-output-'));
after(() => rmSync(root, { recursive: true, force: true }));

const content = randomBytes(3 << 20);
const contentFile = join(root, 'content');
writeFileSync(contentFile, content);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** `sh -c script`'s output through `stages`: the pieces as they came out (held until the end), and the results. */
async function outputOf(script: string, stages: Stage[], minimumPiece = 1) {
  const program = await startProgramWithReusedOutput('sh', ['-c', script], process.env, minimumPiece);
  const transfer = new Pipeline(program.output, stages);
  const pieces: Buffer[] = [];
  for await (const piece of transfer.pieces()) pieces.push(piece);
  assert.equal((await program.exited).code, 0);
  return { output: Buffer.concat(pieces), results: transfer.results() };
}

function pieceSizes(): WatchStage & { sizes: number[] } {
  const sizes: number[] = [];
  return { name: 'sizes', sizes, update: (piece) => void sizes.push(piece.length), finish: () => undefined };
}

describe('a program\'s output read into reused memory', () => {
  it('hands on every byte intact, through watchers alone and through a Step that keeps pieces past its call', async () => {
    // dd writes 5,000 bytes at a time, so reads end anywhere in the coalescer's pieces.
    const writes = `dd if=${contentFile} bs=5000 status=none`;
    const watched = await outputOf(writes, [new DigestStage('sha256', 'content')]);
    assert.ok(watched.output.equals(content), 'pieces held after their reads are copies');
    assert.equal(watched.results['content-sha256'], sha256(content));
    const kept = await outputOf(writes, [coalesceStage((1 << 20) + 7), new DigestStage('sha256', 'stored')]);
    assert.ok(kept.output.equals(content), 'what the coalescer gathered over several reads is intact');
    assert.equal(kept.results['stored-sha256'], sha256(content));
  });

  it('gathers small writes in place into pieces of at least the minimum', async () => {
    const sizes = pieceSizes();
    // 20 writes of 4 KiB, each a while after the last, so each is a read of its own.
    const { output } = await outputOf('for i in $(seq 20); do head -c 4096 /dev/zero; sleep 0.01; done', [sizes], 64 << 10);
    assert.equal(output.length, 20 * 4096);
    assert.deepEqual(sizes.sizes, [16 * 4096, 4 * 4096]);
  });

  it('pauses the reads while the consumer is behind, so the program waits instead of memory growing', async () => {
    const program = await startProgramWithReusedOutput('sh', ['-c', 'head -c 67108864 /dev/zero'], process.env, 1);
    let exited = false;
    void program.exited.then(() => (exited = true));
    const pieces = new Pipeline(program.output, [new DigestStage('sha256', 'content')]).pieces();
    await pieces.next();
    await sleep(500);
    assert.ok(!exited, 'the program is still blocked writing its 64 MiB');
    let bytes = 0;
    for await (const piece of pieces) bytes += piece.length;
    assert.ok(bytes > 60 << 20);
    assert.equal((await program.exited).code, 0);
  });

  it('refuses a temporary directory it cannot use in one line naming TMPDIR, and starts nothing', async () => {
    const saved = process.env.TMPDIR;
    try {
      for (const unusable of [join(root, 'missing'), join(root, 'x'.repeat(120))]) {
        if (unusable.endsWith('x')) mkdirSync(unusable);
        process.env.TMPDIR = unusable;
        await assert.rejects(startProgramWithReusedOutput('sh', ['-c', 'touch started'], process.env, 1), (error: Error) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, /temporary directory .* set TMPDIR to a short path the user can write$/);
          assert.doesNotMatch(error.message, /\n/);
          return true;
        });
      }
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});
