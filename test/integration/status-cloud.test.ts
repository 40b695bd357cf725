// walship status against an object store (s3rver): a cluster archiving there
// with a backup is a WARNING until drilled (the verdict over the same one
// listing), its Prometheus output has the storage figures; a store that
// cannot be reached is UNKNOWN in one line, in bounded time, with no secret
// printed, and the Prometheus file then says walship_status 3.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { PostgresCluster } from '../support/postgres.ts';
import { freePort, giveToPostgres, run } from '../support/processes.ts';

describe('walship status on S3 (s3rver)', () => {
  let emulator: Emulator;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let work: string;

  const walship = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary), ...extraEnv } });

  before(async () => {
    emulator = await startEmulator.s3();
    work = mkdtempSync(join(tmpdir(), 'walship-status-cloud-'));
    giveToPostgres(work);
    env = { ...emulator.settings('cluster-a'), WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '1', '-q']);
    const pushed = await walship(['backup-push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await primary.switchAndWaitArchived();
  });

  after(async () => {
    await primary?.destroy();
    await emulator?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is a WARNING until the backup is drilled, with the storage figures and the last attempt', async () => {
    const status = await walship(['status']);
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.equal(status.stdout.split('\n')[0], 'WALSHIP WARNING - no restore drill yet: run walship drill');
    const text = (await walship(['status', '--prometheus', '-'])).stdout;
    assert.match(text, /^walship_status 1$/m);
    assert.match(text, /^walship_backup_count 1$/m);
    assert.match(text, /^walship_backup_last_attempt_success 1$/m);
    assert.match(text, /^walship_storage_bytes\{kind="backups"\} [1-9]\d*$/m);
    assert.match(text, /^walship_storage_objects\{kind="walship"\} [1-9]\d*$/m);
  });

  it('is UNKNOWN, in one line, in bounded time and without the secret, when the store cannot be reached', async () => {
    const secret = 'do-not-print-this-secret-key';
    const textfile = join(work, 'walship.prom');
    const nowhere = { AWS_ENDPOINT: `http://127.0.0.1:${await freePort()}`, AWS_SECRET_ACCESS_KEY: secret, WALG_STORAGE_MAX_ATTEMPTS: '3', WALG_STORAGE_RETRY_TIME_LIMIT: '3', WALG_STORAGE_REQUEST_TIMEOUT: '2', WALG_LOG_LEVEL: 'DEVEL' };
    const started = Date.now();
    const status = await walship(['status', '--prometheus', textfile], nowhere);
    assert.ok(Date.now() - started < 30_000, `status took ${Date.now() - started} ms`);
    assert.equal(status.code, 3, status.stdout + status.stderr);
    assert.match(status.stdout, /^WALSHIP UNKNOWN - [^\n]+\n$/);
    assert.ok(!(status.stdout + status.stderr).includes(secret), 'the secret was printed');
    assert.match(readFileSync(textfile, 'utf8'), /^walship_status 3$/m);
  });
});
