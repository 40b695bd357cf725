// Progress output: a bar on a terminal, plain lines otherwise, one summary line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes, formatDuration, Progress, transferSummary } from '../../src/progress/progress.ts';

function fakeOutput(isTTY: boolean) {
  const written: string[] = [];
  return { written, stream: { isTTY, columns: 120, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream };
}

describe('progress', () => {
  it('formats sizes, durations and summaries', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(300 * 1024 * 1024), '300.0 MiB');
    assert.equal(formatDuration(1234), '1.2 s');
    assert.equal(formatDuration(125_000), '2:05');
    assert.equal(formatDuration(3_725_000), '1:02:05');
    assert.equal(transferSummary(4 * 2 ** 30, 2 ** 30, 8000), '4.00 GiB (1.00 GiB compressed, 4.0x) in 8.0 s, 512.0 MiB/s');
  });

  it('reports bytes, rate and ETA against a known total', () => {
    let now = 0;
    const { stream } = fakeOutput(false);
    const progress = new Progress({ label: 'backup-fetch', total: 100 * 2 ** 20, output: stream, now: () => now });
    now = 10_000;
    progress.advance(25 * 2 ** 20);
    assert.equal(progress.status(), '25.0 MiB of 100.0 MiB (25%), 2.50 MiB/s, ETA 30 s');
    progress.finish();
  });

  it('never claims 100% of an estimate', () => {
    const { stream } = fakeOutput(false);
    const progress = new Progress({ label: 'backup-push', total: 1000, estimated: true, output: stream });
    progress.advance(5000);
    assert.match(progress.status(), /of ~1000 B \(99%\)/);
    progress.finish();
  });

  it('draws and clears a bar on a terminal, then prints the summary', async () => {
    const { written, stream } = fakeOutput(true);
    const progress = new Progress({ label: 'backup-push', total: 1000, output: stream });
    progress.advance(500);
    await new Promise((resolve) => setTimeout(resolve, 450));
    progress.finish('done: summary');
    assert.ok(written.some((text) => text.startsWith('\r\x1b[Kbackup-push [############............] 500 B of 1000 B (50%)')), written.join('|'));
    assert.deepEqual(written.slice(-2), ['\r\x1b[K', 'done: summary\n']);
  });

  it('prints plain lines when the output is not a terminal', async () => {
    const { written, stream } = fakeOutput(false);
    const progress = new Progress({ label: 'backup-push', output: stream, plainIntervalSeconds: 0.1 });
    progress.advance(2048);
    await new Promise((resolve) => setTimeout(resolve, 250));
    progress.finish('summary');
    assert.match(written[0]!, /^backup-push: 2.00 KiB, [\d.]+ [KM]iB\/s\n$/);
    assert.ok(!written.some((text) => text.includes('\r')));
    assert.equal(written.at(-1), 'summary\n');
  });
});
