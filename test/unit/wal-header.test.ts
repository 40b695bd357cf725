// The long page header at the start of a WAL segment: the system identifier
// wal-push checks against the archive's, and what makes a file not WAL at all.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WalshipError } from '../../src/errors.ts';
import { parseWalLongPageHeader, readWalLongPageHeader } from '../../src/postgres/wal-header.ts';
import { TEST_SYSTEM_IDENTIFIER, walLongPageHeader } from '../support/wal.ts';

const FILE = 'pg_wal/000000010000000000000001';
const directory = mkdtempSync(join(tmpdir(), 'walship-header-'));
after(() => rmSync(directory, { recursive: true, force: true }));

describe('WAL long page header', () => {
  it('reads the system identifier and segment size, little-endian, for every version 13 to 18', () => {
    const magics: [number, number][] = [[0xd106, 13], [0xd10d, 14], [0xd110, 15], [0xd113, 16], [0xd116, 17], [0xd118, 18]];
    for (const [magic, version] of magics) {
      // Above 2^53 and with distinct bytes, so a lossy or big-endian read shows.
      const header = walLongPageHeader({ magic, systemIdentifier: '7714440145453486047', segmentSize: 64 << 20 });
      assert.deepEqual(parseWalLongPageHeader(header, FILE), { postgresVersion: version, systemIdentifier: '7714440145453486047', segmentSize: 64 << 20 });
    }
  });

  it('reads the bytes of a PostgreSQL 15 segment as initdb wrote them', () => {
    // The first 40 bytes of a real segment: magic 0xD110, XLP_LONG_HEADER, timeline 1, LSN 0/1000000.
    const header = Buffer.from('10d10200' + '01000000' + '0000000100000000' + '0000000000000000' + 'df8fc47e70320f6b' + '00000001' + '00200000', 'hex');
    assert.deepEqual(parseWalLongPageHeader(header, FILE), { postgresVersion: 15, systemIdentifier: '7714440145453486047', segmentSize: 16 << 20 });
  });

  it('accepts every flag of 13 to 18 with the long header', () => {
    for (const info of [0x0002, 0x0003, 0x0006, 0x000f]) assert.equal(parseWalLongPageHeader(walLongPageHeader({ info }), FILE).postgresVersion, 15);
  });

  it('reads a version newer than it knows, whose flags it cannot judge, so archiving survives a major upgrade', () => {
    const header = parseWalLongPageHeader(walLongPageHeader({ magic: 0xd11b, info: 0x0012 }), FILE);
    assert.deepEqual(header, { postgresVersion: undefined, systemIdentifier: TEST_SYSTEM_IDENTIFIER, segmentSize: 16 << 20 });
  });

  const refusals: [string, Buffer, RegExp][] = [
    ['a short file', walLongPageHeader().subarray(0, 39), /is 39 bytes long, shorter than a WAL page header/],
    ['an empty file', Buffer.alloc(0), /is 0 bytes long/],
    ['text', Buffer.from('1\t0/3000000\tno recovery target specified\n'.padEnd(64)), /its page magic is 0x0931/],
    ['the magic of a version before 13', walLongPageHeader({ magic: 0xd101 }), /its page magic is 0xd101$/],
    ['a magic beyond any plausible version', walLongPageHeader({ magic: 0xd301 }), /its page magic is 0xd301$/],
    ['a big-endian server', Buffer.concat([Buffer.from([0xd1, 0x10]), walLongPageHeader().subarray(2)]), /a big-endian server wrote it/],
    ['a page without the long header', walLongPageHeader({ info: 0x0001 }), /has no long header, so it does not start a segment/],
    ['unknown flags', walLongPageHeader({ info: 0x0012 }), /has unknown flags 0x0012/],
    ['a segment size that is not a power of two', walLongPageHeader({ segmentSize: 3 << 20 }), /segment size of 3145728 bytes/],
    ['a segment size below 1 MiB', walLongPageHeader({ segmentSize: 512 << 10 }), /segment size of 524288 bytes/],
    ['an impossible block size', walLongPageHeader({ blockSize: 100 }), /WAL block size of 100 bytes/],
  ];
  for (const [what, content, reason] of refusals) {
    it(`refuses ${what}, naming the file`, () => {
      assert.throws(
        () => parseWalLongPageHeader(content, FILE),
        (error: unknown) => error instanceof WalshipError && error.message.startsWith(`${FILE} is not a WAL file of PostgreSQL 13 or later: `) && reason.test(error.message),
      );
    });
  }

  it('reads only the header from a file, and says when the file cannot be read', () => {
    const path = join(directory, '000000010000000000000002');
    writeFileSync(path, Buffer.concat([walLongPageHeader({ systemIdentifier: '42' }), Buffer.alloc(1 << 20, 0xff)]));
    assert.equal(readWalLongPageHeader(path).systemIdentifier, '42');
    writeFileSync(path, Buffer.from('short'));
    assert.throws(() => readWalLongPageHeader(path), /000000010000000000000002 is not a WAL file of PostgreSQL 13 or later: it is 5 bytes long/);
    assert.throws(() => readWalLongPageHeader(join(directory, 'missing')), /cannot read .*missing: ENOENT/);
  });
});
