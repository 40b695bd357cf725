// The libsodium binding's cost on its own: how long loading it takes in a
// fresh process, and how fast crypto_secretstream_xchacha20poly1305 runs in
// WAL-G's 8192-byte chunks, through walship's stages (sodium-native, the
// binding walship ships) and, given a directory where libsodium-wrappers
// (the WebAssembly build) is installed, through that one too: the figures
// the choice of binding was made on (scripts/bench/README.md).
//
//   node scripts/with-runtime.mjs scripts/bench/encryption.ts [--wasm DIR] [--runs 10]
//   (npm install --prefix /tmp/wasm libsodium-wrappers@0.8.4 gives a DIR)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { DecryptTransform, EncryptTransform, loadSodium, PLAIN_CHUNK } from '../../src/stages/encrypt/secretstream.ts';
import { markdownTable, median } from './common.ts';

const { values } = parseArgs({ options: { wasm: { type: 'string' }, runs: { type: 'string', default: '10' } } });
const runs = Number(values.runs);
const MiB = 1 << 20;
const content = randomBytes(16 * MiB);
const key = randomBytes(32);

/** Median milliseconds of `runs` fresh processes running `script` (which prints its own elapsed ms). */
function loadMs(script: string): number {
  return median(Array.from({ length: runs }, () => Number(execFileSync(process.execPath, ['-e', script]).toString())));
}

async function timed(work: () => Promise<unknown> | unknown): Promise<number> {
  const samples: number[] = [];
  for (let run = 0; run < runs + 1; run++) {
    const start = process.hrtime.bigint();
    await work();
    if (run > 0) samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(samples);
}

async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}

const pieces = (data: Buffer, size: number) => Readable.from(Array.from({ length: Math.ceil(data.length / size) }, (_, index) => data.subarray(index * size, (index + 1) * size)));
const rows: string[][] = [];
const row = (binding: string, what: string, ms: number, megabytes?: number) =>
  rows.push([binding, what, `${ms.toFixed(1)} ms`, megabytes === undefined ? '' : `${(megabytes / (ms / 1000)).toFixed(0)} MiB/s`]);

const elapsed = "const t = process.hrtime.bigint(); {LOAD}; Promise.resolve(ready).then(() => process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6)))";
const nativeDirectory = join(import.meta.dirname, '..', '..');
row('sodium-native', 'load in a fresh process', loadMs(elapsed.replace('{LOAD}', `const ready = require(${JSON.stringify(join(nativeDirectory, 'node_modules/sodium-native'))})`)));
const sodium = await loadSodium();
let stored: Buffer = Buffer.alloc(0);
row('sodium-native', "encrypt 16 MiB (walship's stage)", await timed(async () => (stored = await drain(pieces(content, MiB).pipe(new EncryptTransform(sodium, key))))), 16);
row('sodium-native', "decrypt 16 MiB (walship's stage)", await timed(() => drain(pieces(stored, MiB).pipe(new DecryptTransform(sodium, key, { what: 'bench', keyOrigin: 'bench', recorded: true, keyConfirmed: true })))), 16);

if (values.wasm) {
  const wrappersPath = createRequire(join(values.wasm, 'package.json')).resolve('libsodium-wrappers');
  row('libsodium-wrappers (WebAssembly)', 'load in a fresh process', loadMs(elapsed.replace('{LOAD}', `const ready = require(${JSON.stringify(wrappersPath)}).ready`)));
  const wrappers = createRequire(import.meta.url)(wrappersPath);
  await wrappers.ready;
  const chunks = Math.floor(content.length / PLAIN_CHUNK) + 1;
  let sealed: Uint8Array[] = [];
  row('libsodium-wrappers (WebAssembly)', 'encrypt 16 MiB (the same chunks)', await timed(() => {
    const { state, header } = wrappers.crypto_secretstream_xchacha20poly1305_init_push(key);
    sealed = [header];
    for (let index = 0; index < chunks; index++) {
      const last = index === chunks - 1;
      const tag = last ? wrappers.crypto_secretstream_xchacha20poly1305_TAG_FINAL : wrappers.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
      sealed.push(wrappers.crypto_secretstream_xchacha20poly1305_push(state, content.subarray(index * PLAIN_CHUNK, (index + 1) * PLAIN_CHUNK), null, tag));
    }
  }), 16);
  row('libsodium-wrappers (WebAssembly)', 'decrypt 16 MiB (the same chunks)', await timed(() => {
    const state = wrappers.crypto_secretstream_xchacha20poly1305_init_pull(sealed[0], key);
    for (const chunk of sealed.slice(1)) wrappers.crypto_secretstream_xchacha20poly1305_pull(state, chunk);
  }), 16);
}

console.log([`Median of ${runs} runs (loads: fresh processes of this Node runtime), 16 MiB of random content.`, '', ...markdownTable(['binding', 'what', 'time', 'throughput'], rows)].join('\n'));
