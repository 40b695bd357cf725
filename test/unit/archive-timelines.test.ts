// Timeline history files as PostgreSQL writes them, and the graph of timelines they describe.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHistory, TimelineGraph } from '../../src/archive/timelines.ts';
import { parseLsn } from '../../src/postgres/lsn.ts';

/** 00000003.history after two promotions, with a comment and a blank line as PostgreSQL may leave them. */
const THREE = `1\t0/3000158\tno recovery target specified

# a comment
2\t0/50000A0\tbefore 2026-12-01 10:00:00.000000+00
`;

describe('timeline history files', () => {
  it('parse into ancestors and switch points, oldest first', () => {
    assert.deepEqual(parseHistory(THREE, 3, '00000003.history'), [
      { timeline: 1, switchPoint: parseLsn('0/3000158'), reason: 'no recovery target specified' },
      { timeline: 2, switchPoint: parseLsn('0/50000A0'), reason: 'before 2026-12-01 10:00:00.000000+00' },
    ]);
  });

  it('take any whitespace between fields, a missing reason, CRLF line ends and large LSNs', () => {
    assert.deepEqual(parseHistory('  1 1A/B374D848\r\n4\tFF/0\r\n', 5, 'x'), [
      { timeline: 1, switchPoint: parseLsn('1A/B374D848'), reason: '' },
      { timeline: 4, switchPoint: parseLsn('FF/0'), reason: '' },
    ]);
  });

  it('are refused with one line naming the file when damaged', () => {
    assert.throws(() => parseHistory('1\tnot-an-lsn\treason\n', 2, 'wal_005/00000002.history.zst'), {
      message: 'wal_005/00000002.history.zst is not a timeline history file: "1\tnot-an-lsn\treason" is not "timeline<TAB>switch point LSN<TAB>reason"',
    });
    assert.throws(() => parseHistory('2\t0/3000000\ta\n1\t0/4000000\tb\n', 3, '00000003.history'), /00000003\.history is damaged: its timelines and switch points must increase/);
    assert.throws(() => parseHistory('1\t0/5000000\ta\n2\t0/4000000\tb\n', 3, '00000003.history'), /must increase/);
    assert.throws(() => parseHistory('1\t0/3000000\ta\n3\t0/4000000\tb\n', 3, '00000003.history'), /names timeline 3 as an ancestor of timeline 3/);
  });
});

describe('the timeline graph', () => {
  const graph = new TimelineGraph(
    new Map([
      [2, parseHistory('1\t0/3000158\tpromoted\n', 2, '00000002.history')],
      [3, parseHistory(THREE, 3, '00000003.history')],
      // A sibling of 3: timeline 2 was promoted again from an older point.
      [4, parseHistory('1\t0/3000158\tpromoted\n2\t0/4800000\tagain\n', 4, '00000004.history')],
    ]),
  );

  it('knows each timeline\'s parent and switch point', () => {
    assert.deepEqual(graph.withHistory(), [2, 3, 4]);
    assert.equal(graph.parent(1), undefined);
    assert.equal(graph.parent(2), 1);
    assert.equal(graph.parent(3), 2);
    assert.equal(graph.parent(4), 2);
    assert.equal(graph.switchPoint(3), parseLsn('0/50000A0'));
    assert.equal(graph.switchPoint(4), parseLsn('0/4800000'));
    assert.equal(graph.switchPoint(1), undefined);
  });

  it('gives the path to a timeline, each with the positions it holds on the way', () => {
    assert.deepEqual(graph.ancestry(3), [
      { timeline: 1, begin: 0n, end: parseLsn('0/3000158') },
      { timeline: 2, begin: parseLsn('0/3000158'), end: parseLsn('0/50000A0') },
      { timeline: 3, begin: parseLsn('0/50000A0') },
    ]);
    assert.deepEqual(graph.ancestry(4).map((span) => [span.timeline, span.end]), [[1, parseLsn('0/3000158')], [2, parseLsn('0/4800000')], [4, undefined]]);
    assert.deepEqual(graph.ancestry(1), [{ timeline: 1, begin: 0n }]);
  });

  it('gives a timeline without a history file no parents, as PostgreSQL does', () => {
    assert.equal(graph.hasHistory(7), false);
    assert.deepEqual(graph.ancestry(7), [{ timeline: 7, begin: 0n }]);
  });
});
