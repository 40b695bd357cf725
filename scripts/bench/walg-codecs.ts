// Decode throughput of WAL-G's compression methods on 16 MiB WAL segments,
// as wal-fetch decodes them (the codecs' stages), next to zstd and to the
// reference command-line tools:
//   node scripts/with-runtime.mjs scripts/bench/walg-codecs.ts [segment ...]
// Without arguments it writes WAL with pgbench -i (a bulk load) into a
// throwaway cluster and takes two of its segments. Times are the median of 5
// runs, in CPU time of this process (the machine is shared: wall time is noisier).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { codecFor, codecForExtension } from '../../src/stages/compress/codec.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';
import { PostgresCluster } from '../../test/support/postgres.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';

const RUNS = 5;
const PIECE = 1 << 20;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function decodeMs(extension: string, stored: Buffer, expected: Buffer): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const pieces: Buffer[] = [];
    for (let at = 0; at < stored.length; at += PIECE) pieces.push(stored.subarray(at, at + PIECE));
    const before = process.cpuUsage();
    let size = 0;
    await new Pipeline(Readable.from(pieces), [codecForExtension(extension)!.decompress('segment')]).drain((piece) => {
      size += piece.length;
    });
    const used = process.cpuUsage(before);
    if (size !== expected.length) throw new Error(`${extension}: decoded ${size} bytes, expected ${expected.length}`);
    times.push((used.user + used.system) / 1000);
  }
  return median(times);
}

function toolMs(command: string, args: string[], input: Buffer): number {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = process.hrtime.bigint();
    execFileSync(command, args, { input, maxBuffer: 1 << 30, stdio: ['pipe', 'ignore', 'inherit'] });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(times);
}

async function sampleSegments(): Promise<string[]> {
  ensureDebianPackages('postgresql-15', 'lz4', 'xz-utils');
  const cluster = await PostgresCluster.init({ settings: { wal_keep_size: '1GB', max_wal_size: '2GB' } });
  await cluster.start();
  try {
    await cluster.pgbench(['-i', '-s', '5', '-q']);
    const wal = join(cluster.dataDir, 'pg_wal');
    const segments = readdirSync(wal).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
    return segments.slice(1, 3).map((name) => readFileSync(join(wal, name)).toString('base64'));
  } finally {
    await cluster.destroy();
  }
}

const inputs = process.argv.length > 2
  ? process.argv.slice(2).map((path) => ({ name: path, content: readFileSync(path) }))
  : (await sampleSegments()).map((encoded, index) => ({ name: `pgbench -i segment ${index + 1}`, content: Buffer.from(encoded, 'base64') }));

const mbps = (bytes: number, ms: number) => `${Math.round(bytes / (1 << 20) / (ms / 1000))} MiB/s`;
for (const { name, content } of inputs) {
  const lz4 = execFileSync('lz4', ['-q', '-c'], { input: content, maxBuffer: 1 << 30 });
  const lzma = execFileSync('xz', ['--format=lzma', '-c', '-6'], { input: content, maxBuffer: 1 << 30 });
  const zstd = await buffer(await new Pipeline(Readable.from([content]), [codecFor('zstd').compress(1)]).readable());
  console.log(`${name}: ${content.length} bytes; stored lz4 ${lz4.length}, lzma ${lzma.length}, zstd-1 ${zstd.length}`);
  for (const [method, stored, ext, tool] of [
    ['zstd (zstd-napi)', zstd, 'zst', undefined],
    ['lz4 (walship)', lz4, 'lz4', ['lz4', ['-d', '-c']]],
    ['lzma (liblzma via lzma-native)', lzma, 'lzma', ['xz', ['-d', '--format=lzma', '-c']]],
  ] as const) {
    const ms = await decodeMs(ext, stored, content);
    const reference = tool ? `; ${tool[0]} command: ${toolMs(tool[0], [...tool[1]], stored).toFixed(0)} ms wall` : '';
    console.log(`  ${method}: ${ms.toFixed(0)} ms CPU, ${mbps(content.length, ms)}${reference}`);
  }
}
