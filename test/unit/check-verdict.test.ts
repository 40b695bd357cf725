import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHECK_EXIT_CODES, summarize, verdictLine, worstState } from '../../src/checks/verdict.ts';

describe('check verdicts (monitoring-plugin convention)', () => {
  it('maps states to the plugin exit codes', () => {
    assert.deepEqual(CHECK_EXIT_CODES, { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 });
  });

  it('ranks CRITICAL over UNKNOWN over WARNING over OK', () => {
    assert.equal(worstState([]), 'OK');
    assert.equal(worstState(['OK', 'WARNING']), 'WARNING');
    assert.equal(worstState(['WARNING', 'UNKNOWN', 'OK']), 'UNKNOWN');
    assert.equal(worstState(['UNKNOWN', 'CRITICAL', 'WARNING']), 'CRITICAL');
  });

  it('keeps the verdict on one line', () => {
    assert.equal(verdictLine('CRITICAL', 'segment A lost\n  segment B lost'), 'WALSHIP CRITICAL - segment A lost; segment B lost');
  });

  it('summarizes the worst findings first and leaves OK ones out of a bad verdict', () => {
    const result = summarize(
      [
        { state: 'OK', message: 'timeline 1 complete' },
        { state: 'WARNING', message: '2 segments still uploading' },
        { state: 'CRITICAL', message: '000000010000000000000007 lost' },
      ],
      'all good',
    );
    assert.deepEqual(result, { state: 'CRITICAL', summary: '000000010000000000000007 lost; 2 segments still uploading' });
    assert.deepEqual(summarize([{ state: 'OK', message: 'x' }], 'all good'), { state: 'OK', summary: 'all good' });
  });
});
