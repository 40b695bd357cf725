// WAL-G's other compression methods, read from objects made by the reference
// tools: the lz4 command (LZ4 frame format) and xz --format=lzma (LZMA alone).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { IntegrityError } from '../../src/errors.ts';
import { codecForExtension } from '../../src/stages/compress/codec.ts';
import { xxHash32 } from '../../src/stages/compress/lz4.ts';
import { Pipeline } from '../../src/stages/pipeline.ts';

/** WAL-like content: runs of structure, repeats and noise, several LZ4 blocks long. */
function sampleContent(): Buffer {
  const pieces: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const noise = randomBytes(20_000 + i * 1000);
    pieces.push(Buffer.alloc(60_000, i), noise, noise.subarray(0, 10_000), Buffer.from('abc'.repeat(5000 + i)));
  }
  return Buffer.concat(pieces);
}

function tool(command: string, args: string[], input: Buffer): Buffer {
  return execFileSync(command, args, { input, maxBuffer: 1 << 30 });
}

/** `data` in pieces of `size` bytes, as storage might deliver it. */
function inPieces(data: Buffer, size: number): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return Readable.from(pieces);
}

async function decompress(extension: string, stored: Buffer, pieceSize = 1 << 20): Promise<Buffer> {
  const codec = codecForExtension(extension)!;
  const pieces: Buffer[] = [];
  for await (const piece of new Pipeline(inPieces(stored, pieceSize), [codec.decompress('wal_005/obj')]).pieces()) pieces.push(piece);
  return Buffer.concat(pieces);
}

async function rejectsAsCorrupt(extension: string, stored: Buffer, reason: RegExp): Promise<void> {
  await assert.rejects(decompress(extension, stored), (error: unknown) => {
    assert.ok(error instanceof IntegrityError, `an IntegrityError, got ${String(error)}`);
    assert.match(error.message, /^wal_005\/obj is corrupt: it cannot be decompressed/);
    assert.match(error.message, reason);
    return true;
  });
}

const content = sampleContent();

describe('LZ4 frames (WAL-G\'s default method), as the lz4 command writes them', () => {
  const variants: [string, string[]][] = [
    ['the defaults (independent 4 MiB blocks, content checksum)', []],
    ['linked blocks', ['-BD']],
    ['64 KiB linked blocks with block checksums', ['-B4', '-BD', '-BX']],
    ['256 KiB blocks and the content size', ['-B5', '--content-size']],
    ['1 MiB blocks without a content checksum', ['-B6', '--no-frame-crc']],
    ['high compression', ['-9']],
    ['fast compression, which stores some blocks uncompressed', ['--fast=9', '-B4']],
  ];
  for (const [what, options] of variants) {
    it(`reads ${what}, byte for byte, in any piece size`, async () => {
      const stored = tool('lz4', ['-q', '-c', ...options], content);
      assert.ok((await decompress('lz4', stored)).equals(content));
      assert.ok((await decompress('lz4', stored, 7_777)).equals(content));
    });
  }

  it('reads empty and one-byte content, frames one after another, and skips skippable frames', async () => {
    assert.equal((await decompress('lz4', tool('lz4', ['-q', '-c'], Buffer.alloc(0)))).length, 0);
    assert.ok((await decompress('lz4', tool('lz4', ['-q', '-c'], Buffer.from('x')), 1)).equals(Buffer.from('x')));
    const first = tool('lz4', ['-q', '-c', '-BD'], content.subarray(0, 100_000));
    const second = tool('lz4', ['-q', '-c'], content.subarray(100_000));
    const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('12345')]);
    assert.ok((await decompress('lz4', Buffer.concat([skippable, first, skippable, second]), 3)).equals(content));
  });

  it('computes xxHash32 as the reference does', () => {
    // Reference values of xxHash32 with seed 0 (xxhsum -H32).
    assert.equal(xxHash32(Buffer.alloc(0)), 0x02cc5d05);
    assert.equal(xxHash32(Buffer.from('abc')), 0x32d153ff);
    assert.equal(xxHash32(Buffer.from('Nobody inspects the spammish repetition')), 0xe2293b2f);
  });

  it('fails on a flipped byte, a truncated frame, a damaged header and data that is no LZ4 frame', async () => {
    const stored = tool('lz4', ['-q', '-c', '-BD'], content);
    const flipped = Buffer.from(stored);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x40;
    await rejectsAsCorrupt('lz4', flipped, /./);
    await rejectsAsCorrupt('lz4', stored.subarray(0, stored.length - 1000), /ends in the middle of an LZ4 frame/);
    await rejectsAsCorrupt('lz4', stored.subarray(0, stored.length - 2), /ends in the middle of an LZ4 frame/);
    const header = Buffer.from(stored);
    header[5]! ^= 0x70;
    await rejectsAsCorrupt('lz4', header, /frame header checksum does not match|reserved bits/);
    const checked = tool('lz4', ['-q', '-c', '-BX'], content);
    const inBlock = Buffer.from(checked);
    inBlock[100]! ^= 1;
    await rejectsAsCorrupt('lz4', inBlock, /block checksum does not match/);
    await rejectsAsCorrupt('lz4', Buffer.from('this is plain text, not LZ4'), /does not start with an LZ4 frame/);
    await rejectsAsCorrupt('lz4', Buffer.alloc(0), /holds no LZ4 frame/);
    await rejectsAsCorrupt('lz4', Buffer.concat([stored, Buffer.from('trailing')]), /unexpected data after an LZ4 frame/);
    await rejectsAsCorrupt('lz4', tool('lz4', ['-q', '-c', '-l'], content), /legacy LZ4 format/);
  });
});

describe('LZMA alone (.lzma), as xz --format=lzma writes it', () => {
  it('reads it byte for byte, in any piece size, and empty content too', async () => {
    const stored = tool('xz', ['--format=lzma', '-c', '-1'], content);
    assert.ok((await decompress('lzma', stored)).equals(content));
    assert.ok((await decompress('lzma', stored, 4_321)).equals(content));
    assert.equal((await decompress('lzma', tool('xz', ['--format=lzma', '-c'], Buffer.alloc(0)))).length, 0);
  });

  it('fails on a truncated object and on data that is no LZMA stream, as corruption', async () => {
    const stored = tool('xz', ['--format=lzma', '-c', '-1'], content);
    await rejectsAsCorrupt('lzma', stored.subarray(0, stored.length - 500), /./);
    await rejectsAsCorrupt('lzma', Buffer.from('this is plain text, not LZMA'), /./);
  });
});
