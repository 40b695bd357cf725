/**
 * Do the zstd fast paths still pay inside the stage pipeline? In one process,
 * alternating, for 16 MiB of WAL-like content (or the files named):
 *   compress:   the fused file read (zstd through reused buffers)
 *               vs a file stream through zstd-napi's CompressStream;
 *   decompress: decompression straight into the consumer (reused memory)
 *               vs zstd-napi's DecompressStream;
 * each writing a new file (without fsync) as wal-fetch does. Wall time and
 * CPU time (process-wide: zstd-napi runs on the main thread) per way.
 *
 *   node scripts/with-runtime.mjs scripts/bench/fast-paths.ts [--rounds N] [file ...]
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';
import { fixed, markdownTable, median } from './common.ts';

const args = process.argv.slice(2);
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args.splice(roundsAt, 2)[1]) : 40;
const scratch = mkdtempSync(join(tmpdir(), 'walship-fast-paths-'));

/** Runs of repeated bytes with noise between them: about 3:1 with zstd -1, like OLTP WAL. */
function walLike(): string {
  const path = join(scratch, 'segment');
  const pieces = Array.from({ length: 256 }, (_, index) => Buffer.concat([Buffer.alloc(44_000, index % 7), randomBytes(21_536)]));
  writeFileSync(path, Buffer.concat(pieces));
  return path;
}

const files = args.length > 0 ? args : [walLike()];
const zstd = codecFor('zstd');
let sink = -1;
const write = (piece: Buffer) => {
  for (let written = 0; written < piece.length; ) written += writeSync(sink, piece, written, piece.length - written);
};

const stored = await Promise.all(files.map(async (file) => buffer(await new Pipeline({ file }, [zstd.compress(1)]).readable())));
const ways: Record<string, (index: number) => Promise<void>> = {
  'compress: fused file read': async (index) => {
    for await (const piece of await new Pipeline({ file: files[index]! }, [zstd.compress(1)]).readable()) write(piece as Buffer);
  },
  'compress: file stream + CompressStream': async (index) => {
    const stream = createReadStream(files[index]!, { highWaterMark: 1 << 18 });
    for await (const piece of await new Pipeline(stream, [zstd.compress(1)]).readable()) write(piece as Buffer);
  },
  'decompress: straight into the consumer': async (index) => {
    await new Pipeline(Readable.from([stored[index]!]), [zstd.decompress('x')]).drain(write);
  },
  'decompress: DecompressStream': async (index) => {
    for await (const piece of new Pipeline(Readable.from([stored[index]!]), [zstd.decompress('x')]).pieces()) write(piece);
  },
};
const times = new Map<string, { wall: number[]; cpu: number[] }>(Object.keys(ways).map((name) => [name, { wall: [], cpu: [] }]));
const warmup = 3;
for (let round = 0; round < warmup + rounds; round++) {
  const index = round % files.length;
  // Rotated, so no way always runs first.
  const order = Object.entries(ways).map((_, at, all) => all[(at + round) % all.length]!);
  for (const [name, run] of order) {
    sink = openSync(join(scratch, 'out'), 'w');
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    await run(index);
    const wall = Number(process.hrtime.bigint() - started) / 1e6;
    const used = process.cpuUsage(cpu);
    closeSync(sink);
    if (round < warmup) continue;
    times.get(name)!.wall.push(wall);
    times.get(name)!.cpu.push((used.user + used.system) / 1000);
  }
}
const content = files.reduce((sum, file) => sum + readFileSync(file).length, 0) / files.length;
console.log(`${files.length} file(s) of ${fixed(content / 2 ** 20)} MiB, ${fixed(stored.reduce((sum, data) => sum + data.length, 0) / files.length / 2 ** 20, 2)} MiB compressed; ${rounds} rounds after ${warmup} warm-ups\n`);
console.log(markdownTable(['way', 'median ms', 'median CPU ms'], [...times].map(([name, { wall, cpu }]) => [name, fixed(median(wall)), fixed(median(cpu))])).join('\n'));
rmSync(scratch, { recursive: true, force: true });
