// The stage pipeline: results by name, failures that reach the consumer,
// room for a stage between compression and storage (encryption), and every
// codec's round trip with and without its fast paths.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { IntegrityError, WalshipError } from '../../src/errors.ts';
import { DigestStage, SizeStage, VerifyStage } from '../../src/stages/checksum.ts';
import { coalesceStage } from '../../src/stages/coalesce.ts';
import { type WritableCodec, codecFor, zstdCodec } from '../../src/stages/compress/codec.ts';
import { createZstd, type Zstd } from '../../src/stages/compress/zstd.ts';
import { Pipeline, type Source, type Stage, type TransformStage } from '../../src/stages/pipeline.ts';
import { downloadToFile, upload } from '../../src/stages/transfer.ts';
import { FileStorage } from '../../src/storage/file.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-pipeline-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** WAL-like content: long runs with some noise. */
const content = Buffer.concat(Array.from({ length: 12 }, (_, index) => Buffer.concat([Buffer.alloc(200_000, index), randomBytes(30_000)])));
const contentFile = join(root, 'segment');
writeFileSync(contentFile, content);

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const chunked = (data: Buffer, size = 65_536) => Readable.from(Array.from({ length: Math.ceil(data.length / size) }, (_, index) => data.subarray(index * size, (index + 1) * size)));

async function run(source: Source, stages: (Stage | undefined)[]): Promise<Buffer> {
  return buffer(await new Pipeline(source, stages).readable());
}

async function drained(source: Source, stages: (Stage | undefined)[]): Promise<Buffer> {
  const pieces: Buffer[] = [];
  // Pieces may be reused memory: keep copies.
  await new Pipeline(source, stages).drain((piece) => pieces.push(Buffer.from(piece)));
  return Buffer.concat(pieces);
}

/** zstd whose fast paths count the times they actually ran. */
function countingZstd(zstd: Zstd): { zstd: Zstd; fileReads: number; decompressedInto: number } {
  const counts = { zstd, fileReads: 0, decompressedInto: 0 };
  counts.zstd = {
    ...zstd,
    compressFile: async (path, level, options) => {
      const stream = await zstd.compressFile(path, level, options);
      if (stream) counts.fileReads++;
      return stream;
    },
    decompressInto: async (source, consume, what) => {
      const done = await zstd.decompressInto(source, consume, what);
      if (done) counts.decompressedInto++;
      return done;
    },
  };
  return counts;
}

/** A stand-in for encryption: flips every byte, and records what it was given. */
function flipStage(seen?: Buffer[]): TransformStage {
  return {
    name: 'flip',
    transform: () =>
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          seen?.push(Buffer.from(chunk));
          callback(null, Buffer.from(chunk.map((byte) => byte ^ 0xff)));
        },
      }),
  };
}

function failingStage(error: Error, afterBytes = 100_000): TransformStage {
  let bytes = 0;
  return {
    name: 'failing',
    transform: () =>
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback(bytes > afterBytes ? error : null, chunk);
        },
      }),
  };
}

/** A stage that only has a Step: its stream form fails, so a pipeline that used it would fail. Fails after `failAfterBytes`, described as damage. */
function stepOnlyStage(failAfterBytes = Infinity): TransformStage {
  let bytes = 0;
  return {
    name: 'step-only',
    transform: () => {
      throw new Error('the stream form was used');
    },
    step: () => ({
      write(input) {
        bytes += input.length;
        if (bytes > failAfterBytes) throw new Error('bad byte');
        return [Buffer.from(input.map((byte) => byte ^ 0xff))];
      },
      end: () => [Buffer.from('end')],
    }),
    describeFailure: (error) => new IntegrityError(`step-only: ${(error as Error).message}`),
  };
}

const nativeZstd = zstdCodec(createZstd());
const fallbackZstd = zstdCodec(createZstd(async () => undefined));
const codecs: [string, WritableCodec][] = [
  ['zstd (zstd-napi)', nativeZstd],
  ['zstd (node:zlib fallback)', fallbackZstd],
  ['brotli', codecFor('brotli')],
  ['none', codecFor('none')],
];

describe('stage pipeline', () => {
  it('reports each stage\'s results by name once the stream has ended', async () => {
    const transfer = new Pipeline(chunked(content), [new SizeStage('content'), codecFor('zstd').compress(1), new DigestStage('sha256', 'stored')]);
    const output = await buffer(await transfer.readable());
    assert.deepEqual(transfer.results(), { 'content-size': content.length, 'stored-sha256': sha256(output), 'stored-size': output.length });
    assert.equal(transfer.result('content-size'), content.length);
    assert.throws(() => transfer.result('content-crc32'), (error: unknown) => error instanceof WalshipError && /no stage reported content-crc32/.test(error.message));
    await assert.rejects(transfer.readable(), /read only once/);

    // The same from a file, where compression reads the file itself.
    const fromFile = new Pipeline({ file: contentFile }, [codecFor('zstd').compress(1), new DigestStage('crc32', 'stored')]);
    const stored = await buffer(await fromFile.readable());
    assert.ok(zstdDecompressSync(stored).equals(content));
    assert.equal(fromFile.result('stored-size'), stored.length);
    assert.match(fromFile.result('stored-crc32'), /^[0-9a-f]{8}$/);
  });

  it('fails the whole transfer and its consumer when any stage, or the source, fails', async () => {
    const broken = new Error('stage failed');
    const source = chunked(content);
    await assert.rejects(run(source, [codecFor('zstd').compress(1), failingStage(broken), new DigestStage('sha256', 'stored')]), broken);
    assert.ok(source.destroyed, 'the source is stopped');
    await assert.rejects(drained({ file: contentFile }, [failingStage(broken)]), broken);
    const compressed = await run(chunked(content), [codecFor('zstd').compress(1)]);
    // Before a decompression that goes straight to the consumer.
    await assert.rejects(drained(chunked(compressed), [failingStage(broken, 10), nativeZstd.decompress('obj')]), broken);
    // A watch stage fails it at the end.
    await assert.rejects(drained(chunked(content), [new VerifyStage({ algorithm: 'crc32', size: 1 }, 'obj')]), /obj is corrupt: \d+ bytes, expected 1/);
    const unreadable = new Readable({ read() {} });
    setImmediate(() => unreadable.destroy(new Error('connection reset')));
    await assert.rejects(run(unreadable, [fallbackZstd.decompress('obj')]), /connection reset/);

    // Through storage: nothing is stored, and no file is left where a reader would look.
    mkdirSync(join(root, 'archive'), { recursive: true });
    const storage = await FileStorage.open(join(root, 'archive'));
    await assert.rejects(upload(storage, 'wal_005/a.zst', { file: contentFile }, [codecFor('zstd').compress(1), failingStage(broken)], { createOnly: true }), broken);
    assert.equal(await storage.head('wal_005/a.zst'), undefined);
    await upload(storage, 'wal_005/b', chunked(content), [], {});
    const destination = join(root, 'restored');
    await assert.rejects(downloadToFile(await storage.get('wal_005/b'), [new VerifyStage({ algorithm: 'crc32', checksum: '00000000' }, 'wal_005/b')], destination), IntegrityError);
    assert.ok(!existsSync(destination));
    assert.deepEqual(readdirSync(root).filter((name) => name.includes('restored')), []);
  });

  it('runs Steps and the watchers between them as one stream, in order, ends included, and names a failing Step as its stage describes it', async () => {
    const small = chunked(content, 1000);
    const transfer = new Pipeline(small, [coalesceStage(65_536), new DigestStage('sha256', 'content'), stepOnlyStage(), nativeZstd.compress(1), coalesceStage(1 << 18), new DigestStage('sha256', 'stored')]);
    const stored = await buffer(await transfer.readable());
    const flipped = Buffer.concat([Buffer.from(content.map((byte) => byte ^ 0xff)), Buffer.from('end')]);
    assert.ok(zstdDecompressSync(stored).equals(flipped));
    assert.deepEqual(transfer.results(), { 'content-sha256': sha256(content), 'content-size': content.length, 'stored-sha256': sha256(stored), 'stored-size': stored.length });

    const source = chunked(content);
    await assert.rejects(drained(source, [new SizeStage('content'), stepOnlyStage(200_000), nativeZstd.compress(1)]), (error: unknown) => error instanceof IntegrityError && /step-only: bad byte/.test(error.message));
    assert.ok(source.destroyed, 'the source is stopped');
  });

  it('names damaged input as the decompression stage describes it, and only damage', async () => {
    const compressed = await run(chunked(content), [codecFor('zstd').compress(1)]);
    const damaged = Buffer.from(compressed);
    for (let offset = 50; offset < damaged.length; offset += 501) damaged[offset]! ^= 0x5a;
    for (const codec of [nativeZstd, fallbackZstd]) {
      const pieces = new Pipeline(chunked(damaged), [codec.decompress('wal_005/x.zst')]).pieces();
      await assert.rejects(buffer(Readable.from(pieces)), (error: unknown) => error instanceof IntegrityError && /wal_005\/x\.zst is corrupt/.test(error.message));
      await assert.rejects(drained(chunked(damaged), [codec.decompress('wal_005/x.zst')]), /wal_005\/x\.zst is corrupt/);
    }
    // A failing source is not damage.
    const unreadable = new Readable({ read() {} });
    unreadable.push(compressed.subarray(0, 1000));
    setImmediate(() => unreadable.destroy(new Error('connection reset')));
    await assert.rejects(buffer(Readable.from(new Pipeline(unreadable, [fallbackZstd.decompress('obj')]).pieces())), (error: unknown) => !(error instanceof IntegrityError) && /connection reset/.test(String(error)));
  });

  it('compresses a file in the thread pool from the file itself, each of its reused buffers refilled only once taken', async () => {
    // More than two 1 MiB reads, so a buffer refilled too early would corrupt the output.
    const large = Buffer.concat([content, randomBytes(1 << 20), content]);
    const largeFile = join(root, 'large-segment');
    writeFileSync(largeFile, large);
    const counting = countingZstd(createZstd());
    const compressed = await run({ file: largeFile }, [zstdCodec(counting.zstd).compress(1, { inThreadPool: true })]);
    assert.equal(counting.fileReads, 1, 'the stage read the file itself');
    assert.ok(zstdDecompressSync(compressed).equals(large));
    const missing = join(root, 'no-such-segment');
    await assert.rejects(run({ file: missing }, [zstdCodec(counting.zstd).compress(1, { inThreadPool: true })]), /ENOENT/);
  });

  it('gives a stage between compression and storage the compressed bytes, without losing the fast paths', async () => {
    const counting = countingZstd(createZstd());
    const codec = zstdCodec(counting.zstd);
    for (const source of [{ file: contentFile }, chunked(content)] as Source[]) {
      const seen: Buffer[] = [];
      const stored = await run(source, [codec.compress(1), flipStage(seen), new DigestStage('sha256', 'stored')]);
      const compressed = Buffer.concat(seen);
      assert.ok(zstdDecompressSync(compressed).equals(content), 'the inserted stage saw zstd frames');
      assert.ok(Buffer.from(stored.map((byte) => byte ^ 0xff)).equals(compressed));
      // And on the way down, between storage and decompression.
      const downStages = () => [flipStage(), codec.decompress('obj'), new VerifyStage({ algorithm: 'sha256', checksum: sha256(content), size: content.length }, 'obj')];
      assert.ok((await drained(chunked(stored), downStages())).equals(content));
      assert.ok((await run(chunked(stored), downStages())).equals(content));
    }
    assert.equal(counting.fileReads, 1, 'compression read the file itself');
    assert.equal(counting.decompressedInto, 2, 'decompression went straight to the consumer');
  });

  for (const [name, codec] of codecs) {
    it(`${name} round-trips with and without its fast paths, and reads what the others wrote`, async () => {
      const compressedForms = [
        await run({ file: contentFile }, [codec.compress(1)]),
        await run({ file: contentFile }, [codec.compress(1, { inThreadPool: true })]),
        await run(chunked(content), [codec.compress(1)]),
        await run(Readable.from([]), [codec.compress(1)]),
      ];
      if (name !== 'none') assert.ok(compressedForms[0]!.length < content.length / 2, `${name} should compress`);
      const expected = [content, content, content, Buffer.alloc(0)];
      for (const [index, compressed] of compressedForms.entries()) {
        assert.ok((await drained(chunked(compressed), [codec.decompress('obj')])).equals(expected[index]!), `drained form ${index}`);
        assert.ok((await run(chunked(compressed), [codec.decompress('obj')])).equals(expected[index]!), `streamed form ${index}`);
      }
      if (codec.method === 'zstd') {
        const other = codec === nativeZstd ? fallbackZstd : nativeZstd;
        assert.ok((await drained(chunked(compressedForms[0]!), [other.decompress('obj')])).equals(content));
        assert.ok((await run(chunked(compressedForms[1]!), [other.decompress('obj')])).equals(content));
      }
    });
  }

  it('writes zstd frames without their content checksum when asked (dumps), which both implementations read', async () => {
    // The frame header descriptor follows the 4-byte magic number; its bit 2 says whether a content checksum (XXH64) ends the frame.
    const hasChecksum = (frame: Buffer) => (frame[4]! & 0b100) !== 0;
    for (const codec of [nativeZstd, fallbackZstd]) {
      for (const inThreadPool of [false, true]) {
        const plain = await run(chunked(content), [codec.compress(1, { inThreadPool, frameChecksum: false })]);
        assert.ok(!hasChecksum(plain), `${codec === nativeZstd ? 'zstd-napi' : 'node:zlib'}, in the thread pool: ${inThreadPool}`);
        assert.ok(hasChecksum(await run(chunked(content), [codec.compress(1, { inThreadPool })])), 'a checksum by default');
        for (const reader of [nativeZstd, fallbackZstd]) assert.ok((await run(chunked(plain), [reader.decompress('obj')])).equals(content));
      }
    }
  });

  it('falls back to node:zlib\'s zstd, without its fast paths, when the native addon is missing', async () => {
    const zstd = createZstd(async () => undefined);
    assert.equal(await zstd.implementation(), 'node:zlib');
    assert.equal(await zstd.compressFile(contentFile, 1), undefined);
    const source = Readable.from([Buffer.from('x')]);
    assert.equal(await zstd.decompressInto(source, () => undefined, 'obj'), false);
    assert.equal(source.readableDidRead, false, 'it read nothing, so the stream can still be decompressed');
  });
});
