// wal-verify and backup-verify against an object store (s3rver): a cluster
// archiving there with a backup in several parts is OK, and a store that
// cannot be reached is UNKNOWN in one line, in bounded time.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { PostgresCluster } from '../support/postgres.ts';
import { freePort, run } from '../support/processes.ts';

describe('wal-verify and backup-verify on S3 (s3rver)', () => {
  let emulator: Emulator;
  let primary: PostgresCluster;
  let env: Record<string, string>;

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });

  before(async () => {
    emulator = await startEmulator.s3();
    env = { ...emulator.settings('cluster-a'), WALG_TAR_SIZE_THRESHOLD: String(4 << 20), WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '1', '-q']);
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 5000) g');
    await primary.switchAndWaitArchived();
  });

  after(async () => {
    await primary?.destroy();
    await emulator?.stop();
  });

  it('finds the archive and a backup of several parts OK', async () => {
    const wal = await walship(['wal-verify']);
    assert.equal(wal.code, 0, wal.stdout + wal.stderr);
    assert.match(wal.stdout, /^WALSHIP OK - integrity: \d+ WAL segments from base_[0-9A-F]{24} to [0-9A-F]{24} in storage; timeline: the cluster's timeline 1 is the highest in storage\n/);
    const backup = await walship(['backup-verify', 'LATEST', '--json']);
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    const [report] = (JSON.parse(backup.stdout.split('\n').slice(1).join('\n')) as { backups: { status: string; files: number; wal_segments: { where: string }[] }[] }).backups;
    assert.equal(report?.status, 'OK');
    assert.ok(report!.files > 900, `${report!.files} files`);
    assert.deepEqual([...new Set(report!.wal_segments.map((segment) => segment.where))], ['backup']);
    const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as { parts: number }[];
    assert.ok(listed[0]!.parts >= 2, `expected several parts, got ${listed[0]!.parts}`);
  });

  it('is UNKNOWN, in one line and in bounded time, when the store cannot be reached', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const bounded = { AWS_ENDPOINT: nowhere, WALG_STORAGE_MAX_ATTEMPTS: '3', WALG_STORAGE_RETRY_TIME_LIMIT: '3', WALG_STORAGE_REQUEST_TIMEOUT: '2' };
    for (const command of ['wal-verify', 'backup-verify']) {
      const started = Date.now();
      const result = await walship([command], bounded);
      assert.equal(result.code, 3, `${command}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /^WALSHIP UNKNOWN - [^\n]+\n$/);
      assert.ok(Date.now() - started < 30_000, `${command} took ${Date.now() - started} ms`);
    }
  });
});
