import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLsn, isValidSegmentSize, parseLsn, segmentNumberOfLsn, segmentsPerXLogId, segmentStartLsn } from '../../src/postgres/lsn.ts';
import { nextSegmentName, parseWalFileName, requireWalFileName, segmentName, segmentNumberOfName } from '../../src/postgres/wal-name.ts';

const MiB = 1024 * 1024;
const ALL_SEGMENT_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map((n) => n * MiB);

describe('WAL file names', () => {
  it('classifies segments, history, backup and partial files', () => {
    assert.deepEqual(parseWalFileName('00000001000000A2000000FF'), {
      name: '00000001000000A2000000FF',
      kind: 'segment',
      timeline: 1,
      segment: '00000001000000A2000000FF',
    });
    assert.deepEqual(parseWalFileName('0000000A.history'), { name: '0000000A.history', kind: 'history', timeline: 10 });
    assert.deepEqual(parseWalFileName('000000020000000000000003.00000028.backup'), {
      name: '000000020000000000000003.00000028.backup',
      kind: 'backup',
      timeline: 2,
      segment: '000000020000000000000003',
    });
    assert.equal(parseWalFileName('000000030000000100000004.partial')?.kind, 'partial');
    assert.equal(parseWalFileName('000000030000000100000004.partial')?.segment, '000000030000000100000004');
  });

  it('rejects anything else, including lowercase hex and paths', () => {
    for (const name of ['', 'RECOVERYXLOG', '00000001000000000000000', '0000000100000000000000001', '00000001000000000000000a',
      '000000010000000000000001.zst', '00000001.History', '../000000010000000000000001', '000000010000000000000001.partial.x']) {
      assert.equal(parseWalFileName(name), undefined, name);
    }
    assert.throws(() => requireWalFileName('backup_label'), /"backup_label" is not a WAL file name/);
  });

  it('numbers segments and finds the next one for every segment size', () => {
    for (const size of ALL_SEGMENT_SIZES) {
      const perId = segmentsPerXLogId(size);
      assert.equal(perId * BigInt(size), 0x1_0000_0000n);
      const lastInId = segmentName(1, perId - 1n, size);
      assert.equal(lastInId, `0000000100000000${(perId - 1n).toString(16).toUpperCase().padStart(8, '0')}`);
      assert.equal(nextSegmentName(lastInId, size), '000000010000000100000000', `rollover at ${size / MiB} MiB`);
      assert.equal(segmentNumberOfName('000000010000000100000000', size), perId);
      assert.equal(segmentName(7, 5n * perId + 3n, size), `0000000700000005${'3'.padStart(8, '0')}`);
    }
  });

  it('refuses segment numbers that do not exist for the segment size', () => {
    assert.throws(() => segmentNumberOfName('000000010000000000000100', 16 * MiB), /does not exist with 16 MiB segments/);
    assert.equal(segmentNumberOfName('000000010000000000000100', 1 * MiB), 0x100n);
  });
});

describe('LSN arithmetic', () => {
  it('parses and formats LSNs', () => {
    assert.equal(parseLsn('16/B374D848'), 0x16_B374D848n);
    assert.equal(parseLsn('0/0'), 0n);
    assert.equal(formatLsn(0x16_B374D848n), '16/B374D848');
    assert.equal(formatLsn(parseLsn('ffffffff/ffffffff')), 'FFFFFFFF/FFFFFFFF');
    for (const bad of ['', '16', '16/', '/1', '1/2/3', 'G/0', '123456789/0']) assert.throws(() => parseLsn(bad), /invalid LSN/, bad);
  });

  it('maps LSNs to segments for every segment size', () => {
    for (const size of ALL_SEGMENT_SIZES) {
      const lsn = parseLsn('2/00000000') + BigInt(size) * 3n + 17n;
      const number = segmentNumberOfLsn(lsn, size);
      assert.equal(segmentStartLsn(number, size), lsn - 17n);
      const name = segmentName(1, number, size);
      assert.equal(name.slice(8, 16), '00000002');
      assert.equal(segmentNumberOfName(name, size), number);
    }
    assert.equal(segmentName(1, segmentNumberOfLsn(parseLsn('0/3000028'), 16 * MiB), 16 * MiB), '000000010000000000000003');
  });

  it('accepts only power-of-two segment sizes from 1 MiB to 1 GiB', () => {
    for (const size of ALL_SEGMENT_SIZES) assert.ok(isValidSegmentSize(size));
    for (const size of [0, MiB / 2, 3 * MiB, 2048 * MiB, 16 * MiB + 1]) assert.ok(!isValidSegmentSize(size), String(size));
    assert.throws(() => segmentsPerXLogId(3 * MiB), /invalid WAL segment size/);
  });
});
