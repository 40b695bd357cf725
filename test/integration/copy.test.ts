// Copies against a real PostgreSQL 15: file storage as the main storage and
// s3rver as the copy, over TLS as S3 is reached (through a proxy that
// records and breaks requests).
// walship copy brings the copy up to date and a second run sends nothing; a
// point-in-time restore reads the copy alone; a copy killed midway never lists
// a half-copied backup; different content at the copy is reported, never
// overwritten; WAL reaches the copy in the background after wal-push, which
// never waits for a copy that hangs; --prune follows retention's deletions.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { readSentinel } from '../../src/archive/backups.ts';
import { backupPrefix, partKey, sentinelKey, walKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { copiesStatus, type CopyState } from '../../src/copy/status.ts';
import { copyFindings } from '../../src/status/copies.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { segmentNumberOfName } from '../../src/postgres/wal-name.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';
import { openConfigured } from '../support/storage.ts';
import { startTlsProxy, type TlsProxy } from '../support/tls-proxy.ts';

const zst = codecFor('zstd');

interface StatusJson {
  findings: { state: string; message: string }[];
  copies: { copies: CopyState[]; three_two_one: { holds: boolean; reason: string } };
  attempts: Record<string, { result: string }>;
}

interface CopyJson {
  targets: { path: string; report?: { wal: { files: number }; backups: { copied: string[]; objects: number }; pruned: { walFiles: number; backups: string[] } }; error?: string }[];
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('copies of a file archive on S3 (s3rver)', () => {
  let emulator: Emulator;
  let proxy: FaultProxy;
  let tls: TlsProxy;
  let root: string;
  let archive: string;
  let mainConfig: string;
  let copyConfig: string;
  let primary: PostgresCluster;
  let restored: PostgresCluster | undefined;
  /** The copy as the tests see it: straight to s3rver, past the proxy. */
  let copy: Storage;
  let main: Storage;
  let firstBackup: string;
  let secondBackup: string;

  /** The copy's settings as walship reaches it: over TLS, through the proxy. */
  const copySettings = () => ({ ...emulator.settings('copy-a', `https://127.0.0.1:${tls.port}`), WALG_S3_CA_CERT_FILE: tls.certificate });
  // Small parts, so a backup has many.
  const mainSettings = (extra: Record<string, string> = {}) =>
    writeFileSync(mainConfig, JSON.stringify({ WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', WALG_TAR_SIZE_THRESHOLD: String(2 << 20), ...extra }));
  const walship = (args: string[]) =>
    run(walshipBinary, ['--config', mainConfig, ...args], { asPostgres: true, env: { ...process.env, ...libpq(primary), PATH: `${postgresBin}:${process.env.PATH}` } });
  const copyJson = async (args: string[] = []) => {
    const result = await walship(['copy', '--json', ...args]);
    return { ...result, json: JSON.parse(result.stdout || '{"targets":[]}') as CopyJson };
  };
  const backupOf = async (result: { code: number; stdout: string; stderr: string }) => {
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { backup_name: string }).backup_name;
  };

  before(async () => {
    emulator = await startEmulator.s3();
    proxy = await FaultProxy.start(emulator.port);
    root = makePostgresOwnedDirectory('walship-copy-');
    tls = await startTlsProxy(root, proxy.port);
    giveToPostgres(tls.certificate);
    archive = join(root, 'archive');
    mainConfig = join(root, 'walship.json');
    copyConfig = join(root, 'walship-copy.json');
    mkdirSync(archive);
    giveToPostgres(archive);
    // The copy fails fast when it is down, so the forwarder's retries stay short here.
    writeFileSync(copyConfig, JSON.stringify({ ...copySettings(), WALG_STORAGE_MAX_ATTEMPTS: '1', WALG_STORAGE_REQUEST_TIMEOUT: '2' }));
    mainSettings();
    for (const path of [mainConfig, copyConfig]) giveToPostgres(path);
    copy = await openConfigured(new Config(emulator.settings('copy-a')));
    main = await FileStorage.open(archive);
    primary = await PostgresCluster.init({
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} --config ${mainConfig} wal-push %p`, wal_keep_size: '1GB' },
    });
    await primary.start();
    await primary.pgbench(['-i', '-s', '4', '-q']);
  });

  after(async () => {
    await restored?.destroy();
    await primary?.destroy();
    await tls?.stop();
    await proxy?.stop();
    await emulator?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('copies every backup and WAL file, and a second copy transfers nothing', async () => {
    firstBackup = await backupOf(await walship(['backup-push', '--json']));
    await primary.switchAndWaitArchived();
    const first = await copyJson(['--to', copyConfig]);
    assert.equal(first.code, 0, first.stderr);
    const [target] = first.json.targets;
    assert.deepEqual(target?.report?.backups.copied, [firstBackup]);
    assert.ok(target!.report!.wal.files >= 3, `${target!.report!.wal.files} WAL files copied`);
    assert.ok(await copy.head(sentinelKey(firstBackup)));

    proxy.clear();
    const second = await copyJson(['--to', copyConfig]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual([second.json.targets[0]!.report!.wal.files, second.json.targets[0]!.report!.backups.copied], [0, []]);
    assert.deepEqual(proxy.recorded.filter((request) => request.method !== 'GET' && request.method !== 'HEAD'), [], 'no request that writes');
    const reads = proxy.recorded.filter((request) => request.method === 'GET' && !request.url.includes('list-type')).map((request) => request.url.split('?')[0]!);
    assert.deepEqual(reads.map((url) => url.split('/').at(-1)).sort(), ['archive.json', `${firstBackup}_backup_stop_sentinel.json`, 'metadata.json'].sort(), 'three reads: the identity and one backup\'s sentinel and metadata.json');
  });

  it('restores to a point in time from the copy alone', async () => {
    await primary.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 500) g');
    const target = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(501, 700) g');
    await primary.switchAndWaitArchived();
    assert.equal((await walship(['copy'])).code, 1, 'WALSHIP_COPIES is not set yet: nothing to copy to');
    assert.equal((await walship(['copy', '--to', copyConfig])).code, 0);

    const restoreRoot = makePostgresOwnedDirectory('walship-copy-restore-');
    const dataDir = join(restoreRoot, 'data');
    const fetched = await run(walshipBinary, ['--config', copyConfig, 'backup-fetch', dataDir, 'LATEST', '--recovery-target-time', target, '--recovery-target-action', 'promote'], { asPostgres: true });
    assert.equal(fetched.code, 0, fetched.stderr);
    // Replay must read the copy: the main archive is out of reach meanwhile.
    renameSync(archive, `${archive}.away`);
    try {
      restored = await PostgresCluster.adopt(dataDir, restoreRoot, { settings: { archive_mode: 'off' } });
      await restored.start();
      await restored.waitPromoted();
      assert.equal(await restored.sql('SELECT count(*) FROM marker'), '500');
      assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '400000');
    } finally {
      renameSync(`${archive}.away`, archive);
      await restored?.destroy();
      restored = undefined;
    }
  });

  it('never lists a backup whose copy was killed midway, and completes it on the next run', async () => {
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(701, 800) g');
    secondBackup = await backupOf(await walship(['backup-push', '--json']));
    await primary.switchAndWaitArchived();
    // The third part's upload hangs: the copy is killed while it waits.
    proxy.inject({ method: 'PUT', url: new RegExp(`${secondBackup}/tar_partitions/part_003`), fault: { kind: 'stall' } });
    const copying = spawn(walshipBinary, ['--config', mainConfig, 'copy', '--to', copyConfig], { stdio: 'ignore', env: { ...process.env, WALG_UPLOAD_CONCURRENCY: '1' } });
    const exited = new Promise((resolve) => copying.once('exit', resolve));
    await until(async () => (proxy.seen.faults > 0 ? true : undefined), 'the copy to reach the third part');
    copying.kill('SIGKILL');
    await exited;
    assert.ok(await copy.head(partKey(secondBackup, 'part_001.tar.zst')), 'the first parts were copied');
    assert.equal(await copy.head(sentinelKey(secondBackup)), undefined);
    const listed = await run(walshipBinary, ['--config', copyConfig, 'backup-list', '--json'], {});
    assert.deepEqual((JSON.parse(listed.stdout) as { backup_name: string }[]).map((backup) => backup.backup_name), [firstBackup]);

    proxy.clear();
    const resumed = await copyJson(['--to', copyConfig]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const report = resumed.json.targets[0]!.report!;
    assert.deepEqual(report.backups.copied, [secondBackup]);
    const parts = (JSON.parse((await run(walshipBinary, ['--config', mainConfig, 'backup-list', '--json'], {})).stdout) as { backup_name: string; parts: number }[])
      .find((backup) => backup.backup_name === secondBackup)!.parts;
    assert.ok(report.backups.objects < parts, `resumed: ${report.backups.objects} of ${parts} parts copied again`);
    const relisted = await run(walshipBinary, ['--config', copyConfig, 'backup-list', '--json'], {});
    assert.deepEqual((JSON.parse(relisted.stdout) as { backup_name: string }[]).map((backup) => backup.backup_name), [firstBackup, secondBackup]);
  });

  it('reports an object the copy holds with different content, never overwrites it, and exits 1', async () => {
    const next = await primary.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    const planted = Buffer.from('not this segment');
    await copy.put(walKey(next, zst), Readable.from([planted]));
    await primary.switchAndWaitArchived();
    const result = await walship(['copy', '--to', copyConfig]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`ERROR: wal_005/${next}\\.zst: .* holds ${planted.length} bytes under this name, the source \\d+; not overwritten`));
    const stored = await copy.get(walKey(next, zst));
    const chunks: Buffer[] = [];
    for await (const chunk of stored.body) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), planted);
    await copy.delete(walKey(next, zst));
    assert.equal((await walship(['copy', '--to', copyConfig])).code, 0);
  });

  it('forwards WAL archived after the copy to it in the background, within seconds', async () => {
    mainSettings({ WALSHIP_COPIES: copyConfig });
    for (let round = 0; round < 3; round++) {
      await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 100) g');
      const segment = await primary.switchAndWaitArchived();
      const archivedAt = Date.now();
      await until(async () => ((await copy.head(walKey(segment, zst))) ? true : undefined), `${segment} at the copy`, 10_000);
      assert.ok(Date.now() - archivedAt < 10_000);
    }
  });

  it('archives at its normal pace while the copy hangs, status shows the copy lagging, and the copy catches up', async () => {
    // Every request to the copy hangs until it times out: wal-push must not wait for it.
    proxy.inject({ fault: { kind: 'stall' } });
    const failedBefore = (await primary.sql('SELECT failed_count FROM pg_stat_archiver'));
    const missed: string[] = [];
    for (let round = 0; round < 3; round++) {
      await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 100) g');
      const started = Date.now();
      missed.push(await primary.switchAndWaitArchived());
      assert.ok(Date.now() - started < 5_000, `archiving took ${Date.now() - started} ms with the copy hanging`);
    }
    assert.equal(await primary.sql('SELECT failed_count FROM pg_stat_archiver'), failedBefore);
    const status = await copiesStatus(main, [{ path: copyConfig, open: async () => copy, isOffHost: () => true }], { maxLagMs: 60 * 60_000 });
    const state = status.copies[0]!;
    assert.ok(state.missing!.walFiles >= 3, `status: ${JSON.stringify(state)}`);
    assert.ok(state.lagSeconds! >= 0);
    assert.equal(copyFindings(status, 1).find((finding) => finding.message.startsWith('copy '))?.state, 'CRITICAL');
    assert.equal(status.threeTwoOne.holds, true, 'within the lag allowed, the copy still counts');
    const strict = await copiesStatus(main, [{ path: copyConfig, open: async () => copy, isOffHost: () => true }], { maxLagMs: 0 });
    assert.equal(strict.threeTwoOne.holds, false);

    proxy.clear();
    for (const segment of missed) await until(async () => ((await copy.head(walKey(segment, zst))) ? true : undefined), `${segment} at the copy`, 90_000);
    const caughtUp = await copiesStatus(main, [{ path: copyConfig, open: async () => copy, isOffHost: () => true }], { maxLagMs: 60 * 60_000 });
    assert.deepEqual([caughtUp.copies[0]!.missing!.walFiles, caughtUp.copies[0]!.lagSeconds], [0, 0]);
  });

  it('with --prune, deletes from the copy what retention deleted from the main storage; without it, nothing', async () => {
    // s3rver answers 500 now and then to deletes in one folder at once (it reads the folder after each): retried as a real S3's 500 would be.
    writeFileSync(copyConfig, JSON.stringify(copySettings()));
    // The main storage's retention keeps the newest backup only, and the WAL from its start on.
    const sentinel = await readSentinel(main, secondBackup);
    const keepFrom = segmentNumberOfLsn(parseLsn(sentinel.LSN), 16 << 20);
    const gone: string[] = [sentinelKey(firstBackup)];
    for await (const object of main.list(backupPrefix(firstBackup))) gone.push(object.key);
    for await (const object of main.list('wal_005/')) {
      const name = object.key.slice('wal_005/'.length, 'wal_005/'.length + 24);
      if (/^[0-9A-F]{24}$/.test(name) && segmentNumberOfName(name, 16 << 20) < keepFrom) gone.push(object.key);
    }
    for (const key of gone) await main.delete(key);

    const kept = await copyJson(['--to', copyConfig]);
    assert.equal(kept.code, 0, kept.stderr);
    for (const key of gone) assert.ok(await copy.head(key), `${key} is still at the copy`);

    const pruned = await copyJson(['--to', copyConfig, '--prune']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(pruned.json.targets[0]!.report!.pruned.backups, [firstBackup]);
    assert.ok(pruned.json.targets[0]!.report!.pruned.walFiles > 0);
    for (const key of gone) assert.equal(await copy.head(key), undefined, `${key} is pruned`);
    // walship/ records (attempts of cron jobs, drill reports) are the main storage's own; the identity travels.
    for await (const object of main.list('')) {
      if (object.key.startsWith('walship/') && object.key !== 'walship/archive.json') continue;
      assert.ok(await copy.head(object.key), `${object.key} stays at the copy`);
    }
  });
  it('status reports each copy: up to date with 3-2-1 (OK), lagging past --max-copy-lag (WARNING, CRITICAL past four times), unreachable in bounded time (WARNING), no 3-2-1 with a local file copy alone', async () => {
    proxy.clear();
    const copyStarted = Date.now();
    const copied = await copyJson(['--to', copyConfig]);
    assert.equal(copied.code, 0, copied.stderr);
    const copyEnded = Date.now();
    const directConfig = join(root, 'walship-copy-direct.json');
    const fileCopyConfig = join(root, 'walship-copy-file.json');
    const statusConfig = join(root, 'walship-status.json');
    const fileCopy = join(root, 'copy-file');
    mkdirSync(fileCopy);
    giveToPostgres(fileCopy);
    writeFileSync(directConfig, JSON.stringify(emulator.settings('copy-a')));
    writeFileSync(fileCopyConfig, JSON.stringify({ WALG_FILE_PREFIX: fileCopy }));
    for (const path of [directConfig, fileCopyConfig]) giveToPostgres(path);
    const status = async (copies: string, args: string[] = []) => {
      writeFileSync(statusConfig, JSON.stringify({ WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', WALSHIP_COPIES: copies }));
      giveToPostgres(statusConfig);
      const started = Date.now();
      const result = await run(walshipBinary, ['--config', statusConfig, 'status', '--json', ...args], { asPostgres: true, env: { ...process.env, ...libpq(primary), PATH: `${postgresBin}:${process.env.PATH}` } });
      assert.match(result.stdout, /^WALSHIP (OK|WARNING|CRITICAL) - /, result.stderr);
      const json = JSON.parse(result.stdout.split('\n').slice(1).join('\n')) as StatusJson;
      const copyFinding = json.findings.find((finding) => finding.message.startsWith('copy '));
      return { ...result, json, copyFinding, seconds: (Date.now() - started) / 1000 };
    };

    const healthy = await status(directConfig, ['--prometheus', join(root, 'walship.prom')]);
    const [state] = healthy.json.copies.copies;
    assert.deepEqual([state!.reachable, state!.missing], [true, { backups: 0, walFiles: 0, bytes: 0 }], JSON.stringify(state));
    assert.ok(state!.newestBackup && state!.newestWal, JSON.stringify(state));
    assert.equal(healthy.json.copies.three_two_one.holds, true, healthy.json.copies.three_two_one.reason);
    assert.deepEqual(healthy.json.findings.filter((finding) => /^(copy |3-2-1)/.test(finding.message)), [], 'no finding about the copies');
    assert.equal(healthy.json.attempts.copy?.result, 'success', 'walship copy recorded its attempt');
    const text = readFileSync(join(root, 'walship.prom'), 'utf8');
    for (const series of [`walship_copy_reachable{copy="${directConfig}"} 1`, `walship_copy_lag_seconds{copy="${directConfig}"} 0`, `walship_copy_missing_segments{copy="${directConfig}"} 0`, `walship_copy_missing_backups{copy="${directConfig}"} 0`, 'walship_3_2_1 1']) {
      assert.ok(text.split('\n').includes(series), `${series} in\n${text}`);
    }
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.doesNotMatch(checked.stdout + checked.stderr, /copy|3_2_1|error/i, 'promtool accepts the copies\' series');

    // A file storage is on the database host: with it the only copy, 3-2-1 does not hold.
    assert.equal((await walship(['copy', '--to', fileCopyConfig])).code, 0);
    const local = await status(fileCopyConfig);
    assert.equal(local.json.copies.copies[0]!.missing!.walFiles, 0);
    assert.equal(local.json.copies.three_two_one.holds, false);
    assert.ok(local.json.findings.some((finding) => finding.state === 'WARNING' && /^3-2-1 does not hold: .*file storage on the database host/.test(finding.message)), JSON.stringify(local.json.findings));

    // The copy down (every request hangs), in bounded time. The copy job at the start of this test brought it up to
    // date and recorded so: it lags by at most the time since, which is within the default hour: no finding, and
    // 3-2-1 still holds. Past a limit shorter than that bound: a WARNING.
    proxy.inject({ fault: { kind: 'stall' } });
    const down = await status(copyConfig);
    assert.ok(down.seconds < 45, `status took ${down.seconds}s with the copy down (each copy gets 30 s)`);
    const [unreachable] = down.json.copies.copies;
    assert.equal(unreachable!.reachable, false);
    const upToDateAt = Date.parse(unreachable!.upToDateAt!);
    assert.ok(upToDateAt >= copyStarted - 1000 && upToDateAt <= copyEnded, `up to date at the start of the copy job: ${JSON.stringify(unreachable)}`);
    assert.equal(down.copyFinding, undefined, JSON.stringify(down.json.findings));
    assert.equal(down.json.copies.three_two_one.holds, true, down.json.copies.three_two_one.reason);
    // This status starts over 30 s later (the first one waited out the copy's timeout): its bound is past the limit, not past four times it.
    const stale = await status(copyConfig, ['--max-copy-lag', `${Math.max(unreachable!.lagSeconds!, 15)}s`]);
    assert.equal(stale.copyFinding?.state, 'WARNING', JSON.stringify(stale.json.findings));
    assert.match(stale.copyFinding!.message, /is unreachable/);
    assert.equal(stale.json.copies.three_two_one.holds, false);
    assert.doesNotMatch(down.stdout + stale.stdout, /secret|SECRET_ACCESS/i);

    // WAL archived while the copy is down: its lag against --max-copy-lag.
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 100) g');
    await primary.switchAndWaitArchived();
    await sleep(5_000);
    const within = await status(directConfig, ['--max-copy-lag', '1h']);
    const lag = within.json.copies.copies[0]!.lagSeconds!;
    assert.ok(within.json.copies.copies[0]!.missing!.walFiles >= 1 && lag >= 5, JSON.stringify(within.json.copies));
    assert.equal(within.copyFinding, undefined, 'within the limit, no finding');
    assert.equal((await status(directConfig, [`--max-copy-lag`, `${Math.floor(lag / 2)}s`])).copyFinding?.state, 'WARNING');
    assert.equal((await status(directConfig, ['--max-copy-lag', '1s'])).copyFinding?.state, 'CRITICAL');
    proxy.clear();
  });
});
