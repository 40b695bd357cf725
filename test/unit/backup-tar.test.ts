// The tar reader pg_basebackup's stream goes through, and the splitting of
// that stream into parts at member boundaries.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { partName } from '../../src/archive/layout.ts';
import { PartSplitter } from '../../src/backup/parts.ts';
import { parseHeader, readTar, type TarEvent, TarFormatError, TarParser } from '../../src/backup/tar.ts';
import { paxRecord, tarArchive, tarHeader } from '../support/tar.ts';

async function* chunked(buffer: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < buffer.length; offset += size) yield buffer.subarray(offset, offset + size);
}

async function collect(source: AsyncIterable<TarEvent>): Promise<{ path: string; content: string }[]> {
  const members: { path: string; content: string }[] = [];
  for await (const event of source) {
    if (event.kind === 'entry') members.push({ path: event.entry.path, content: '' });
    if (event.kind === 'data') members.at(-1)!.content += event.raw.toString();
  }
  return members;
}

const sample = tarArchive([
  { name: 'backup_label', content: 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n' },
  { name: 'base/', type: '5', mode: 0o700 },
  { name: 'base/1/1259', content: 'x'.repeat(1500) },
  { name: 'empty', content: '' },
  { name: 'global/pg_control', content: 'y'.repeat(512) },
]);

describe('tar reader', () => {
  it('reads members and contents the same whatever the chunk size', async () => {
    const expected = await collect(readTar(chunked(sample, sample.length)));
    assert.deepEqual(expected.map((member) => member.path), ['backup_label', 'base/', 'base/1/1259', 'empty', 'global/pg_control']);
    assert.equal(expected[2]!.content.length, 1500);
    for (const size of [1, 7, 511, 512, 513, 4096]) {
      assert.deepEqual(await collect(readTar(chunked(sample, size))), expected, `chunk size ${size}`);
    }
  });

  it('keeps every byte: the raw events concatenate back to the input', async () => {
    const raw: Buffer[] = [];
    for await (const event of readTar(chunked(sample, 100))) raw.push(event.raw);
    assert.ok(Buffer.concat(raw).equals(sample));
  });

  it('reads what GNU tar writes, pax long names included', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'walship-tar-'));
    try {
      const longName = `${'d'.repeat(120)}/${'f'.repeat(130)}`;
      execFileSync('mkdir', ['-p', join(directory, 'src', 'd'.repeat(120))]);
      writeFileSync(join(directory, 'src', longName), 'long');
      writeFileSync(join(directory, 'src', 'short'), 'short');
      execFileSync('tar', ['--format=pax', '-C', join(directory, 'src'), '-cf', join(directory, 'a.tar'), 'short', longName]);
      const members = await collect(readTar(chunked(readFileSync(join(directory, 'a.tar')), 1000)));
      assert.deepEqual(members, [{ path: 'short', content: 'short' }, { path: longName, content: 'long' }]);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('applies pax size and path overrides', async () => {
    const records = Buffer.from(paxRecord('path', 'renamed/file') + paxRecord('size', '3'));
    const archive = Buffer.concat([
      tarArchive([{ name: 'PaxHeader', type: 'x', content: records }]).subarray(0, -1024),
      tarArchive([{ name: 'original', content: 'abc' }]),
    ]);
    assert.deepEqual(await collect(readTar(chunked(archive, 64))), [{ path: 'renamed/file', content: 'abc' }]);
  });

  it('reads base-256 sizes (members over 8 GiB)', () => {
    const header = tarHeader({ name: 'big' }, 0);
    header.fill(0, 124, 136);
    header[124] = 0x80;
    header.writeUIntBE(9 * 2 ** 30, 130, 6);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.equal(parseHeader(header).size, 9 * 2 ** 30);
  });

  it('rejects a corrupt header and a truncated archive', async () => {
    const corrupt = Buffer.from(sample);
    corrupt[10] = corrupt[10]! ^ 0xff;
    await assert.rejects(collect(readTar(chunked(corrupt, 512))), TarFormatError);
    await assert.rejects(collect(readTar(chunked(sample.subarray(0, 1200), 512))), /truncated/);
    const parser = new TarParser();
    [...parser.push(sample.subarray(0, sample.length - 512))];
    assert.throws(() => parser.finish(), /truncated/);
  });
});

describe('part splitting', () => {
  async function split(archive: Buffer, threshold: number): Promise<Buffer[]> {
    const splitter = new PartSplitter(readTar(chunked(archive, 300)), threshold);
    const parts: Buffer[] = [];
    while (!splitter.finished) {
      const chunks: Buffer[] = [];
      for await (const chunk of splitter.nextPart()) chunks.push(chunk);
      parts.push(Buffer.concat(chunks));
    }
    return parts;
  }

  it('cuts only at member boundaries, once a part holds the threshold', async () => {
    const parts = await split(sample, 1024);
    const members = await Promise.all(parts.map((part) => collect(readTar(chunked(part, 512)))));
    assert.deepEqual(members.map((list) => list.map((member) => member.path)), [
      ['backup_label'],
      ['base/', 'base/1/1259'],
      ['empty', 'global/pg_control'],
    ]);
  });

  it('makes every part a complete tar archive, and loses nothing', async () => {
    for (const threshold of [1, 1000, 3000, 1 << 30]) {
      const parts = await split(sample, threshold);
      const together = (await Promise.all(parts.map((part) => collect(readTar(chunked(part, 512)))))).flat();
      assert.deepEqual(together, await collect(readTar(chunked(sample, 512))), `threshold ${threshold}`);
    }
    assert.equal((await split(sample, 1 << 30)).length, 1);
  });

  it('reads ahead without handing anything out', async () => {
    let seen = 0;
    const splitter = new PartSplitter(readTar(chunked(sample, 512)), 1 << 30, () => (seen += 1));
    await splitter.readAheadUntil(() => seen >= 2);
    const chunks: Buffer[] = [];
    for await (const chunk of splitter.nextPart()) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(sample));
    assert.ok(splitter.finished);
  });

  it('names parts in archive order', () => {
    assert.equal(partName(1, { extension: 'zst' }), 'part_001.tar.zst');
    assert.equal(partName(12, { extension: '' }), 'part_012.tar');
    assert.equal(partName(1234, { extension: 'br' }), 'part_1234.tar.br');
  });
});
