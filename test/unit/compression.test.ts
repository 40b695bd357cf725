import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { COMPRESSION_METHODS } from '../../src/config/settings.ts';
import { IntegrityError } from '../../src/errors.ts';
import { DigestStage, digestFile, VerifyStage } from '../../src/stages/checksum.ts';
import { type Codec, codecFor, codecForExtension, codecsPreferring, zstdCodec } from '../../src/stages/compress/codec.ts';
import { createZstd } from '../../src/stages/compress/zstd.ts';
import { Pipeline, type Stage } from '../../src/stages/pipeline.ts';

/** Everything `source` becomes through `stages`. */
async function chain(source: Readable, ...stages: (Stage | undefined)[]): Promise<Buffer> {
  return buffer(await new Pipeline(source, stages).readable());
}

/** WAL-like content: runs of structure with some noise, in several chunks. */
function sampleChunks(): Buffer[] {
  const chunks = [Buffer.alloc(0), Buffer.from('x')];
  for (let i = 0; i < 8; i++) chunks.push(Buffer.concat([Buffer.alloc(300_000, i), randomBytes(50_000)]));
  return chunks;
}

/** A skippable zstd frame (RFC 8878) of `size` bytes of user data: decompressors pass over it. */
function skippableFrame(size: number): Buffer {
  const frame = Buffer.alloc(8 + size, 7);
  frame.writeUInt32LE(0x184d2a5e, 0);
  frame.writeUInt32LE(size, 4);
  return frame;
}

function chunksOf(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let start = 0; start < data.length; start += size) chunks.push(data.subarray(start, start + size));
  return chunks;
}

/** 16 MiB shaped like a WAL segment: 8 KiB pages, each a header with its address, then records of structure and noise. */
function walLikeSegment(): Buffer {
  const segment = Buffer.alloc(16 << 20);
  for (let page = 0; page < 2048; page++) {
    const start = page * 8192;
    segment.writeUInt16LE(0xd110, start);
    segment.writeUInt32LE(page * 8192, start + 8);
    for (let offset = start + 24; offset + 200 <= start + 8192; offset += 200) {
      segment.writeUInt32LE(offset, offset);
      segment.fill(page % 7, offset + 4, offset + 150);
      randomBytes(50).copy(segment, offset + 150);
    }
  }
  return segment;
}

async function roundTrip(method: (typeof COMPRESSION_METHODS)[number], input: Buffer[]): Promise<{ compressed: Buffer; output: Buffer }> {
  const codec = codecFor(method);
  const compressed = await chain(Readable.from(input), codec.compress(method === 'zstd' ? 1 : 3));
  const output = await chain(Readable.from([compressed]), codec.decompress('obj'));
  return { compressed, output };
}

describe('compression stages', () => {
  for (const method of COMPRESSION_METHODS) {
    it(`${method} round-trips empty, tiny and multi-chunk content`, async () => {
      for (const input of [[], [Buffer.from('a')], sampleChunks()]) {
        const { compressed, output } = await roundTrip(method, input);
        assert.ok(output.equals(Buffer.concat(input)));
        if (method !== 'none' && input.length > 2) assert.ok(compressed.length < output.length / 2, `${method} should compress`);
      }
    });
  }

  it('hands zstd output on in pieces of about 256 KiB that hold no more memory than their bytes', async () => {
    for (const input of [randomBytes(3 << 20), Buffer.alloc(64 << 20)]) {
      const pieces: Buffer[] = [];
      for await (const piece of await new Pipeline(Readable.from(chunksOf(input, 64 << 10)), [codecFor('zstd').compress(1)]).readable()) pieces.push(piece as Buffer);
      assert.ok(zstdDecompressSync(Buffer.concat(pieces)).equals(input));
      assert.ok(pieces.length <= 14, `${pieces.length} pieces`);
      // A view of a larger buffer would keep all of it alive while the piece waits downstream.
      for (const piece of pieces) assert.ok(piece.buffer.byteLength <= Math.max(piece.length, Buffer.poolSize), `a ${piece.length}-byte piece holds ${piece.buffer.byteLength} bytes`);
    }
  });

  it('decompresses zstd into full pieces of 256 KiB, no faster than they are read', async () => {
    const content = Buffer.concat([Buffer.alloc(48 << 20, 7), randomBytes(100_000)]);
    const compressed = zstdCompressSync(content, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
    const stream = await codecFor('zstd').decompress('obj')!.transform();
    stream.end(compressed);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Nothing read yet: what waits is a few pieces, not the 48 MiB this input becomes.
    assert.ok(stream.readableLength <= 1 << 20, `${stream.readableLength} bytes waiting`);
    // 'data' events, as pipe() and pipeline() see them (an async iterator would join what is buffered).
    const pieces: Buffer[] = [];
    stream.on('data', (piece: Buffer) => pieces.push(piece));
    await once(stream, 'end');
    assert.ok(Buffer.concat(pieces).equals(content));
    for (const piece of pieces.slice(0, -1)) assert.equal(piece.length, 256 << 10);
    // In small chunks, through a pipeline, to a reader that takes its time: everything arrives.
    let received = 0;
    for await (const piece of new Pipeline(Readable.from(chunksOf(compressed, 4 << 10)), [codecFor('zstd').decompress('obj')]).pieces()) {
      received += piece.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(received, content.length);
  });

  it('decompresses zstd streams that end where a piece ends: a 16 MiB WAL segment, several frames, tiny chunks; so does the node:zlib fallback', async () => {
    const native = codecFor('zstd');
    const fallback = zstdCodec(createZstd(() => Promise.resolve(undefined)));
    /** Everything the stream makes of `chunks`, read as pipeline() reads it, or by a reader that waits between pieces. */
    async function decompressed(codec: Codec, chunks: Buffer[], slowReader: boolean): Promise<Buffer> {
      const pieces: Buffer[] = [];
      for await (const piece of new Pipeline(Readable.from(chunks), [codec.decompress('obj')]).pieces()) {
        pieces.push(Buffer.from(piece));
        if (slowReader) await new Promise((resolve) => setImmediate(resolve));
      }
      return Buffer.concat(pieces);
    }
    const segment = walLikeSegment();
    const frame = (content: Buffer) => zstdCompressSync(content, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
    // 16 MiB is 64 pieces of 256 KiB: its last piece fills exactly as its frame ends.
    const ownFrames = await chain(Readable.from(chunksOf(segment, 64 << 10)), codecFor('zstd').compress(1));
    const parts = [Buffer.alloc(256 << 10, 1), Buffer.alloc((256 << 10) + 1, 2), randomBytes(100), Buffer.alloc(512 << 10, 3)];
    const frames = parts.map(frame);
    const multiFrame = Buffer.concat(frames);
    const cases: { name: string; chunks: Buffer[]; content: Buffer }[] = [
      { name: 'a WAL segment, one frame, whole', chunks: [frame(segment)], content: segment },
      { name: 'a WAL segment, one frame, 64 KiB chunks', chunks: chunksOf(frame(segment), 64 << 10), content: segment },
      { name: "a WAL segment in walship's own frames", chunks: chunksOf(ownFrames, 64 << 10), content: segment },
      { name: 'several frames, whole', chunks: [multiFrame], content: Buffer.concat(parts) },
      { name: 'several frames, each chunk ending where a frame ends', chunks: frames, content: Buffer.concat(parts) },
      { name: 'several frames in tiny chunks', chunks: chunksOf(multiFrame, 7), content: Buffer.concat(parts) },
      { name: 'one frame of exactly one piece, in tiny chunks', chunks: chunksOf(frames[0]!, 3), content: parts[0]! },
      { name: 'a skippable frame, then frames, in tiny chunks', chunks: chunksOf(Buffer.concat([skippableFrame(5), multiFrame]), 5), content: Buffer.concat(parts) },
    ];
    for (const [implementation, codec] of [['zstd-napi', native], ['node:zlib', fallback]] as const) {
      for (const { name, chunks, content } of cases) {
        for (const slowReader of [false, true]) {
          const output = await decompressed(codec, chunks, slowReader).catch((error: Error) => assert.fail(`${implementation}, ${name}: ${error.message}`));
          assert.ok(output.equals(content), `${implementation}, ${name}: ${output.length} bytes out of ${content.length}`);
        }
      }
      // A stream cut inside a frame still fails, wherever the cut is.
      for (const cut of [multiFrame.length - 1, frames[0]!.length + 10, frames[0]!.length + 2]) {
        await assert.rejects(decompressed(codec, [multiFrame.subarray(0, cut)], false), /middle of a zstd frame/, `${implementation}, cut at ${cut}`);
      }
      await assert.rejects(decompressed(codec, [Buffer.concat([frames[0]!, Buffer.from('not zstd')])], false), `${implementation}: trailing garbage`);
    }
  });

  it('uses the native zstd-napi addon when it loads', async () => {
    assert.equal(await createZstd().implementation(), 'zstd-napi');
  });

  it('writes zstd frames node:zlib reads, and reads frames node:zlib writes', async () => {
    const input = Buffer.concat(sampleChunks());
    const { compressed } = await roundTrip('zstd', [input]);
    assert.ok(zstdDecompressSync(compressed).equals(input));
    const fromZlib = zstdCompressSync(input, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
    const output = await chain(Readable.from([fromZlib]), codecFor('zstd').decompress('obj'));
    assert.ok(output.equals(input));
  });

  it('detects a flipped bit and a truncated zstd frame', async () => {
    const { compressed } = await roundTrip('zstd', [Buffer.concat(sampleChunks())]);
    const flipped = Buffer.from(compressed);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x10;
    await assert.rejects(chain(Readable.from([flipped]), codecFor('zstd').decompress('obj')));
    const truncated = compressed.subarray(0, compressed.length - 100);
    await assert.rejects(chain(Readable.from([truncated]), codecFor('zstd').decompress('obj')));
  });

  it('compresses a file and decompresses into reused memory, detecting damage', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'walship-zstd-file-')), 'segment');
    const content = Buffer.concat(sampleChunks());
    writeFileSync(path, content);
    const compressed = await buffer((await createZstd().compressFile(path, 1))!);
    assert.ok(zstdDecompressSync(compressed).equals(content), 'standard zstd frames');
    const decompress = async (data: Buffer) => {
      const pieces: Buffer[] = [];
      // Pieces are views of a reused buffer: copy them to keep them.
      await createZstd().decompressInto(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), (piece) => pieces.push(Buffer.from(piece)), 'obj');
      return Buffer.concat(pieces);
    };
    assert.ok((await decompress(compressed)).equals(content));
    const flipped = Buffer.from(compressed);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x10;
    await assert.rejects(decompress(flipped), (error: unknown) => error instanceof IntegrityError && /obj is corrupt/.test(error.message));
    await assert.rejects(decompress(compressed.subarray(0, compressed.length - 100)), /obj is corrupt: it ends in the middle of a zstd frame/);
    rmSync(dirname(path), { recursive: true });
  });

  it('maps extensions to codecs and prefers the configured one', () => {
    assert.equal(codecForExtension('zst')?.method, 'zstd');
    assert.equal(codecForExtension('br')?.method, 'brotli');
    assert.equal(codecForExtension('')?.method, 'none');
    assert.equal(codecForExtension('lz4')?.method, 'lz4');
    assert.equal(codecForExtension('lzma')?.method, 'lzma');
    assert.equal(codecForExtension('gz'), undefined);
    assert.deepEqual(codecsPreferring('brotli').map((codec) => codec.method), ['brotli', 'zstd', 'none', 'lz4', 'lzma']);
  });
});

describe('integrity stages', () => {
  it('digests content passing through unchanged, with CRC-32 or SHA-256', async () => {
    const expected = {
      crc32: '0d4a1185',
      sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9',
    } as const;
    for (const algorithm of ['crc32', 'sha256'] as const) {
      const digest = new DigestStage(algorithm);
      const output = await chain(Readable.from([Buffer.from('hello '), Buffer.from('world')]), digest);
      assert.equal(output.toString(), 'hello world');
      assert.deepEqual(digest.digest(), { algorithm, checksum: expected[algorithm], size: 11 });
    }
  });

  it('digests files the same way as streams', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'walship-digest-')), 'file');
    const chunks = sampleChunks();
    writeFileSync(path, Buffer.concat(chunks));
    const streamed = new DigestStage('crc32');
    await chain(Readable.from(chunks), streamed);
    assert.deepEqual(await digestFile(path, 'crc32'), streamed.digest());
    rmSync(dirname(path), { recursive: true });
  });

  it('fails the stream on a size or checksum mismatch, and passes a match', async () => {
    const content = () => Readable.from([Buffer.from('hello world')]);
    const crc = { algorithm: 'crc32', checksum: '0d4a1185' } as const;
    assert.equal((await chain(content(), new VerifyStage({ ...crc, size: 11 }, 'obj'))).toString(), 'hello world');
    await assert.rejects(chain(content(), new VerifyStage({ ...crc, size: 12 }, 'obj')), (error: unknown) => {
      assert.ok(error instanceof IntegrityError);
      assert.match(error.message, /obj is corrupt: 11 bytes, expected 12/);
      return true;
    });
    await assert.rejects(chain(content(), new VerifyStage({ algorithm: 'crc32', checksum: '00000000' }, 'obj')), /obj is corrupt: CRC-32 0d4a1185 does not match the stored 00000000/);
    await assert.rejects(chain(content(), new VerifyStage({ algorithm: 'sha256', checksum: '0'.repeat(64) }, 'obj')), /obj is corrupt: SHA-256/);
  });
});
