// How status judges a copy it cannot reach: by the main storage's record of
// the last copy job that brought that copy fully up to date. Within the lag
// allowed it is no finding and still counts for 3-2-1; past the limit a
// WARNING, past four times it CRITICAL; with no such record, a WARNING at
// once (its lag unknown).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { recordAttempt } from '../../src/archive/attempts.ts';
import { copiesStatus, type CopyTargetToCheck } from '../../src/copy/status.ts';
import { WalshipError } from '../../src/errors.ts';
import { copyFindings } from '../../src/status/copies.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { SyntheticArchive, writeToDirectory } from '../support/synthetic-archive.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-copy-status-'));
after(() => rmSync(root, { recursive: true, force: true }));
const MINUTE = 60_000;

const unreachable = (path: string): CopyTargetToCheck => ({
  path,
  open: async () => {
    throw new WalshipError('no answer within 30s');
  },
  isOffHost: () => true,
});

describe('status of a copy it cannot reach', async () => {
  const directory = join(root, 'main');
  writeToDirectory(new SyntheticArchive({ segments: 40, backups: 2 }), directory);
  const main = await FileStorage.open(directory);
  const completed = (copies: string[]) => recordAttempt(main, 'copy', async () => undefined, () => ({ result: 'success', upToDate: copies }));
  const before = Date.now();
  await completed(['/etc/walship-s3.json']);
  const after = Date.now();
  // A later job that completed only another copy, and one that recorded none (--wal): neither moves the first copy's time.
  await completed(['/etc/walship-nas.json']);
  await recordAttempt(main, 'copy', async () => undefined);
  const copies = [unreachable('/etc/walship-s3.json'), unreachable('/etc/walship-gcs.json')];
  const at = (now: number) => copiesStatus(main, copies, { maxLagMs: MINUTE, now });

  it('bounds its lag by the start of the last copy job that completed it', async () => {
    const status = await at(after + 30_000);
    const [s3, gcs] = status.copies;
    const upToDateAt = Date.parse(s3!.upToDateAt!);
    assert.ok(upToDateAt >= before && upToDateAt <= after, s3!.upToDateAt);
    assert.ok(s3!.lagSeconds! >= 30 && s3!.lagSeconds! <= 31 + (after - before) / 1000, String(s3!.lagSeconds));
    assert.equal(gcs!.upToDateAt, undefined);
  });

  it('judges that bound against --max-copy-lag, and an unknown lag as a WARNING', async () => {
    const stateOf = async (now: number) => copyFindings(await at(now), MINUTE).filter((finding) => finding.message.startsWith('copy ')).map((finding) => [finding.message.split(' ')[1], finding.state]);
    assert.deepEqual(await stateOf(after + 30_000), [['/etc/walship-s3.json', 'OK'], ['/etc/walship-gcs.json', 'WARNING']]);
    assert.deepEqual(await stateOf(after + 2 * MINUTE), [['/etc/walship-s3.json', 'WARNING'], ['/etc/walship-gcs.json', 'WARNING']]);
    assert.deepEqual(await stateOf(after + 5 * MINUTE), [['/etc/walship-s3.json', 'CRITICAL'], ['/etc/walship-gcs.json', 'WARNING']]);
    const [unknown] = copyFindings(await at(after), MINUTE).filter((finding) => finding.message.startsWith('copy /etc/walship-gcs.json'));
    assert.match(unknown!.message, /unreachable, its lag unknown .*no answer within 30s/);
  });

  it('counts it for 3-2-1 while what it may lack is within the lag allowed', async () => {
    assert.equal((await at(after + 30_000)).threeTwoOne.holds, true);
    assert.equal((await at(after + 2 * MINUTE)).threeTwoOne.holds, false);
  });
});
