// The WAL index: stored WAL by timeline as runs of consecutive segments, built from a listing in any order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyKey } from '../../src/archive/layout.ts';
import { type WalIndex, WalIndexBuilder } from '../../src/archive/wal-index.ts';
import { type IntegrityWindows, segmentStatuses } from '../../src/archive/wal-integrity.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';

const MiB = 1 << 20;

/** Builds an index from keys (each object `size` bytes, modified at `time` seconds). */
function indexOf(objects: { key: string; size?: number; time?: number }[], segmentSize = 16 * MiB): WalIndex {
  const builder = new WalIndexBuilder();
  for (const { key, size = 100, time = 0 } of objects) {
    const kind = classifyKey(key);
    assert.equal(kind.kind, 'wal', key);
    if (kind.kind === 'wal') builder.add(kind.file, kind.extension, { key, size, lastModified: new Date(time * 1000) });
  }
  return builder.finish(segmentSize);
}

const key = (timeline: number, segment: bigint, extension = 'zst', size = 16 * MiB) => `wal_005/${segmentName(timeline, segment, size)}${extension ? `.${extension}` : ''}`;
const runsOf = (index: WalIndex, timeline: number) => index.runs(timeline).map((run) => [run.first, run.last]);

describe('the WAL index', () => {
  it('keeps consecutive segments as one run per stretch, with bytes and the newest time', () => {
    const objects = [
      ...[1n, 2n, 3n, 4n].map((segment) => ({ key: key(1, segment), size: 10, time: Number(segment) })),
      ...[7n, 8n].map((segment) => ({ key: key(1, segment), size: 20, time: 100 - Number(segment) })),
      { key: key(2, 8n) },
    ];
    const index = indexOf(objects);
    assert.deepEqual(index.timelines(), [1, 2]);
    assert.deepEqual(runsOf(index, 1), [[1n, 4n], [7n, 8n]]);
    assert.deepEqual(index.runs(1).map((run) => [run.bytes, run.newest.getTime() / 1000]), [[40, 4], [40, 93]]);
    assert.equal(index.first(1), 1n);
    assert.equal(index.last(1), 8n);
    assert.equal(index.first(3), undefined);
    assert.equal(index.objects, 7);
    assert.equal(index.bytes, 40 + 40 + 100);
  });

  it('joins runs across xlog ids once the segment size is known', () => {
    // With 16 MiB segments 000000010000000000000FF is followed by 000000010000000100000000.
    const names = ['0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001'];
    assert.deepEqual(runsOf(indexOf(names.map((name) => ({ key: `wal_005/${name}.zst` }))), 1), [[254n, 257n]]);
    // With 1 MiB segments an xlog id holds 4096 of them: the same names leave a gap.
    assert.deepEqual(runsOf(indexOf(names.map((name) => ({ key: `wal_005/${name}.zst` })), MiB), 1), [[254n, 255n], [4096n, 4097n]]);
  });

  it('refuses names that cannot exist with the segment size', () => {
    assert.throws(() => indexOf([{ key: 'wal_005/000000010000000000000100.zst' }]), {
      message: 'WAL segment 000000010000000000000100 does not exist with 16 MiB segments',
    });
  });

  it('finds the gaps between two segments', () => {
    const index = indexOf([2n, 3n, 6n, 7n, 8n, 12n].map((segment) => ({ key: key(1, segment) })));
    const gaps = (from: bigint, to: bigint) => index.gaps(1, from, to).map((gap) => [gap.first, gap.last]);
    assert.deepEqual(gaps(0n, 14n), [[0n, 1n], [4n, 5n], [9n, 11n], [13n, 14n]]);
    assert.deepEqual(gaps(2n, 3n), []);
    assert.deepEqual(gaps(1n, 5n), [[1n, 1n], [4n, 5n]]);
    assert.deepEqual(gaps(3n, 7n), [[4n, 5n]]);
    assert.deepEqual(gaps(4n, 4n), [[4n, 4n]]);
    assert.deepEqual(gaps(7n, 12n), [[9n, 11n]]);
    assert.deepEqual(index.gaps(2, 1n, 3n).map((gap) => [gap.timeline, gap.first, gap.last]), [[2, 1n, 3n]]);
  });

  it('builds the same runs from a listing in any order, a segment under two extensions counted once', () => {
    const segments = [...Array(40).keys()].map(BigInt).filter((segment) => segment % 10n !== 9n);
    const objects = segments.map((segment) => ({ key: key(1, segment, segment % 3n === 0n ? 'br' : 'zst') }));
    // The same segment stored twice (a change of WALG_COMPRESSION_METHOD), the copies apart in the listing.
    objects.push({ key: key(1, 5n, '') }, { key: key(1, 30n, 'lz4') });
    const expected = [[0n, 8n], [10n, 18n], [20n, 28n], [30n, 38n]];
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff;
    for (let round = 0; round < 20; round++) {
      const shuffled = [...objects].sort(() => random() - 0.5);
      const index = indexOf(shuffled);
      assert.deepEqual(runsOf(index, 1), expected, `round ${round}`);
      assert.equal(index.bytes, objects.length * 100);
      assert.deepEqual(index.runs(1).map((run) => run.bytes), [1000, 900, 900, 1000]);
    }
    // Filling the gaps joins the runs.
    const filled = indexOf([...objects, ...[9n, 19n, 29n].map((segment) => ({ key: key(1, segment) }))].reverse());
    assert.deepEqual(runsOf(filled, 1), [[0n, 38n]]);
  });

  it('answers whether a file is stored, and keeps history, .partial and .backup files apart', () => {
    const index = indexOf([
      { key: key(1, 3n) },
      { key: key(1, 4n) },
      { key: 'wal_005/000000010000000000000005.partial.zst' },
      { key: 'wal_005/00000002.history.zst' },
      { key: 'wal_005/000000010000000000000003.00000028.backup.zst' },
      { key: key(2, 5n) },
    ]);
    assert.ok(index.has('000000010000000000000003'));
    assert.ok(index.has('000000010000000000000004'));
    assert.ok(!index.has('000000010000000000000005'));
    assert.ok(!index.has('000000010000000000000002'));
    assert.ok(!index.has('000000030000000000000003'));
    assert.ok(!index.has('000000010000000000000100'), 'impossible with 16 MiB segments');
    assert.ok(index.has('000000010000000000000005.partial'));
    assert.ok(index.has('00000002.history'));
    assert.ok(!index.has('00000003.history'));
    assert.deepEqual(runsOf(index, 1), [[3n, 4n]]);
    assert.deepEqual(index.otherFiles('history').map((other) => other.key), ['wal_005/00000002.history.zst']);
    assert.deepEqual(index.otherFiles().map((other) => other.file.kind), ['partial', 'history', 'backup']);
    assert.equal(index.segmentName(2, 5n), '000000020000000000000005');
  });
});

describe("WAL-G's segment statuses (wal-integrity.ts)", () => {
  /** Timeline 1 holding `stored` of segments 1 to 20, checked through `through`. */
  const statuses = (stored: bigint[], windows: IntegrityWindows, options: { through?: bigint; archivedThrough?: bigint } = {}) => {
    const index = indexOf(stored.map((segment) => ({ key: key(1, segment) })));
    const path = [{ timeline: 1, first: 1n, last: options.through ?? 20n }];
    return segmentStatuses(index, path, windows, options.archivedThrough).map((run) => `${run.first}-${run.last} ${run.status}`);
  };
  const allBut = (...missing: bigint[]) => [...Array(20).keys()].map((index) => BigInt(index + 1)).filter((segment) => !missing.includes(segment));

  it('finds every segment stored as one run', () => {
    assert.deepEqual(statuses(allBut(), { delayed: 0, uploading: 16 }), ['1-20 FOUND']);
  });

  it('counts missing segments among the newest `uploading` ones as uploading, older ones as lost', () => {
    assert.deepEqual(statuses(allBut(18n, 19n), { delayed: 0, uploading: 16 }), ['1-17 FOUND', '18-19 MISSING_UPLOADING', '20-20 FOUND']);
    // The scan from the newest segment spends the window on found segments too.
    assert.deepEqual(statuses(allBut(18n, 19n), { delayed: 0, uploading: 2 }), ['1-17 FOUND', '18-18 MISSING_LOST', '19-19 MISSING_UPLOADING', '20-20 FOUND']);
    assert.deepEqual(statuses(allBut(3n), { delayed: 0, uploading: 16 }), ['1-2 FOUND', '3-3 MISSING_LOST', '4-20 FOUND']);
  });

  it('counts missing segments past the newest found one as delayed, up to the delayed window', () => {
    // Stored to 18, needed to 22: 21 and 22 delayed, then the uploading window from 20 back.
    const windows = { delayed: 2, uploading: 3 };
    assert.deepEqual(statuses(allBut(19n, 20n), windows, { through: 22n }), ['1-18 FOUND', '19-20 MISSING_UPLOADING', '21-22 MISSING_DELAYED']);
    assert.deepEqual(statuses(allBut(17n, 19n, 20n), windows, { through: 22n }), ['1-16 FOUND', '17-17 MISSING_LOST', '18-18 FOUND', '19-20 MISSING_UPLOADING', '21-22 MISSING_DELAYED']);
    assert.deepEqual(statuses(allBut(), { delayed: 0, uploading: 0 }, { through: 21n }), ['1-20 FOUND', '21-21 MISSING_LOST']);
  });

  it('counts a missing segment the archiver reported stored as lost, whatever the windows', () => {
    assert.deepEqual(statuses(allBut(18n, 19n), { delayed: 5, uploading: 16 }, { archivedThrough: 18n }), ['1-17 FOUND', '18-18 MISSING_LOST', '19-19 MISSING_UPLOADING', '20-20 FOUND']);
    assert.deepEqual(statuses(allBut(), { delayed: 5, uploading: 16 }, { through: 23n, archivedThrough: 21n }), ['1-20 FOUND', '21-21 MISSING_LOST', '22-23 MISSING_DELAYED']);
  });

  it('follows the path across timelines, in recovery order', () => {
    const index = indexOf([...[1n, 2n, 4n].map((segment) => ({ key: key(1, segment) })), ...[5n, 6n, 7n].map((segment) => ({ key: key(2, segment) }))]);
    const path = [{ timeline: 1, first: 1n, last: 4n }, { timeline: 2, first: 5n, last: 8n }];
    const runs = segmentStatuses(index, path, { delayed: 1, uploading: 2 }).map((run) => `${run.timeline}:${run.first}-${run.last} ${run.status}`);
    assert.deepEqual(runs, ['1:1-2 FOUND', '1:3-3 MISSING_LOST', '1:4-4 FOUND', '2:5-7 FOUND', '2:8-8 MISSING_DELAYED']);
  });
});
