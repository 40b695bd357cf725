// The parts of walship status that need no server: thresholds and their
// errors, attempt records (written, read back by the catalog, pruned, never
// failing the job), the verdict over a synthetic file archive, the
// Prometheus output (promtool check metrics) and the shipped alert rules
// (promtool check rules, promtool test rules).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ATTEMPTS_KEPT, recordAttempt } from '../../src/archive/attempts.ts';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { attemptKey, parseAttemptKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { WalshipError } from '../../src/errors.ts';
import { configuredRetention } from '../../src/retention/settings.ts';
import { exposition } from '../../src/status/prometheus.ts';
import { formatAge } from '../../src/status/section.ts';
import { walshipStatus } from '../../src/status/status.ts';
import { readThresholds } from '../../src/status/thresholds.ts';
import { FileStorage } from '../../src/storage/file.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { projectRoot } from '../support/paths.ts';
import { SyntheticArchive, writeToDirectory } from '../support/synthetic-archive.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-status-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('status thresholds', () => {
  it('take the defaults, then settings, then options, in s, m, h and d', () => {
    assert.deepEqual(readThresholds(new Config({}), {}), { maxBackupAgeMs: 26 * HOUR, maxArchiveLagMs: 15 * 60_000, maxDrillAgeMs: 8 * DAY, maxDumpAgeMs: 26 * HOUR, maxCopyLagMs: HOUR, dumpAgeAsked: false });
    const config = new Config({ WALSHIP_MAX_BACKUP_AGE: '2d', WALSHIP_MAX_ARCHIVE_LAG: '90s', WALSHIP_MAX_DUMP_AGE: '1d12h', WALSHIP_MAX_COPY_LAG: '2h' });
    assert.deepEqual(readThresholds(config, { maxBackupAge: '30m', maxDrillAge: '1h30m' }), { maxBackupAgeMs: 30 * 60_000, maxArchiveLagMs: 90_000, maxDrillAgeMs: 90 * 60_000, maxDumpAgeMs: 36 * HOUR, maxCopyLagMs: 2 * HOUR, dumpAgeAsked: true });
  });

  it('refuse a bad duration with one line naming the option or the setting', () => {
    assert.throws(() => readThresholds(new Config({}), { maxBackupAge: '26' }), { message: /^--max-backup-age "26" is not a duration: write a number with a unit, such as 90s, 15m, 26h or 8d/ });
    assert.throws(() => readThresholds(new Config({}), { maxDrillAge: '0d' }), { message: /^--max-drill-age "0d" is not a duration/ });
    assert.throws(() => readThresholds(new Config({ WALSHIP_MAX_ARCHIVE_LAG: '15 minutes' }), {}), { message: /^WALSHIP_MAX_ARCHIVE_LAG "15 minutes" is not a duration/ });
  });

  it('say ages as a DBA does', () => {
    assert.equal(formatAge(31 * HOUR), '1d 7h');
    assert.equal(formatAge(26 * HOUR), '1d 2h');
    assert.equal(formatAge(5 * HOUR + 3 * 60_000), '5h 3m');
    assert.equal(formatAge(15 * 60_000), '15m');
    assert.equal(formatAge(1500), '2s');
  });
});

describe('attempt records', () => {
  const fresh = async () => FileStorage.open(mkdtempSync(join(root, 'attempts-')));

  it('record a success and a failure with its one line, read back from one listing', async () => {
    const storage = await fresh();
    assert.equal(await recordAttempt(storage, 'backup-push', async () => 42), 42);
    await assert.rejects(recordAttempt(storage, 'backup-push', async () => {
      throw new WalshipError('pg_basebackup failed:\nserver closed the connection');
    }), /pg_basebackup failed/);
    const catalog = await ArchiveCatalog.load(storage);
    const attempts = catalog.attempts();
    assert.deepEqual(attempts.map((attempt) => [attempt.job, attempt.ended?.result]), [['backup-push', 'success'], ['backup-push', 'failure']]);
    const failed = JSON.parse(execFileSync('cat', [join(storage.location.replace('file://', ''), attempts[1]!.ended!.key)], { encoding: 'utf8' }));
    assert.equal(failed.result, 'failure');
    assert.equal(failed.error, 'pg_basebackup failed:; server closed the connection');
    assert.match(failed.finished_at, /^\d{4}-\d\d-\d\dT/);
  });

  it('keep the newest attempts of each job only', async () => {
    const storage = await fresh();
    for (let attempt = 0; attempt < ATTEMPTS_KEPT + 3; attempt++) await recordAttempt(storage, 'delete', async () => undefined);
    await recordAttempt(storage, 'drill', async () => undefined);
    const folder = join(storage.location.replace('file://', ''), 'walship', 'attempts');
    assert.equal(readdirSync(join(folder, 'delete')).length, 2 * ATTEMPTS_KEPT);
    assert.equal(readdirSync(join(folder, 'drill')).length, 2);
  });

  it('never fail the job when the record cannot be written', async () => {
    const storage = await fresh();
    const unwritable: Storage = Object.assign(Object.create(storage) as Storage, {
      put: async () => {
        throw new WalshipError('storage is read-only');
      },
    });
    assert.equal(await recordAttempt(unwritable, 'dump-push', async () => 'done'), 'done');
    await assert.rejects(recordAttempt(unwritable, 'dump-push', async () => Promise.reject(new WalshipError('the job failed'))), /the job failed/);
  });

  it('are named by job, start time and phase', () => {
    const key = attemptKey({ job: 'backup-push', started: new Date('2026-12-01T02:15:00.123Z'), id: '5f3a9c01', phase: 'failed' });
    assert.equal(key, 'walship/attempts/backup-push/20261201T021500.123Z_5f3a9c01_failed.json');
    assert.deepEqual(parseAttemptKey(key), { job: 'backup-push', started: new Date('2026-12-01T02:15:00.123Z'), id: '5f3a9c01', phase: 'failed' });
    assert.equal(parseAttemptKey('walship/attempts/backup-push/notes.txt'), undefined);
  });
});

describe('status over a synthetic archive', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const status = async (lastBackup: number, options: { missingEvery?: number; attempt?: 'fail'; settings?: Record<string, string> } = {}) => {
    const backups = 10;
    const archive = new SyntheticArchive({ segments: 2000, backups, partsPerBackup: 2, missingEvery: options.missingEvery ?? 1_000_000, firstBackup: lastBackup - (backups - 1) * DAY, backupEveryMs: DAY });
    const directory = mkdtempSync(join(root, 'synthetic-'));
    writeToDirectory(archive, directory);
    const storage = await FileStorage.open(directory);
    if (options.attempt === 'fail') await recordAttempt(storage, 'backup-push', async () => Promise.reject(new WalshipError('could not connect to the server'))).catch(() => undefined);
    const config = new Config(options.settings ?? {});
    const thresholds = readThresholds(config, {});
    return walshipStatus({ storage, server: { unavailable: 'no server in this test' }, thresholds, windows: { delayed: 0, uploading: 16 }, retention: configuredRetention(config), now });
  };

  it('is CRITICAL for an old newest backup, naming its age and the limit', async () => {
    const { result } = await status(now - 31 * HOUR);
    assert.equal(result.state, 'CRITICAL');
    assert.match(result.summary, /^newest backup is 1d 7h old \(limit 1d 2h\); no restore drill yet: run walship drill$/);
  });

  it('is only a WARNING for a fresh backup that was never drilled', async () => {
    const { result, metrics } = await status(now - HOUR);
    assert.equal(result.state, 'WARNING', result.summary);
    assert.equal(result.summary, 'no restore drill yet: run walship drill');
    assert.equal(metrics.find((metric) => metric.name === 'walship_status')?.value, 1);
    assert.equal(metrics.find((metric) => metric.name === 'walship_backup_count')?.value, 10);
  });

  it('is CRITICAL for a failed last attempt and for lost WAL, naming both', async () => {
    const { result, metrics } = await status(now - HOUR, { missingEvery: 700, attempt: 'fail' });
    assert.equal(result.state, 'CRITICAL');
    assert.match(result.summary, /last backup-push attempt failed \(\d+s ago\): could not connect to the server/);
    assert.match(result.summary, /WAL segments? missing on timeline 3's history: [0-9A-F]{24}/);
    assert.equal(metrics.find((metric) => metric.name === 'walship_backup_last_attempt_success')?.value, 0);
    assert.ok(metrics.find((metric) => metric.name === 'walship_wal_missing_segments')!.value > 0);
  });

  it("reports what the configured retention would delete, and dumps only when asked", async () => {
    const { result, metrics } = await status(now - HOUR, { settings: { WALSHIP_RETAIN_LAST: '3', WALSHIP_MAX_DUMP_AGE: '26h' } });
    const wouldDelete = (result.json as { storage: { retention_would_delete: { backups: string[]; wal_segments: number } } }).storage.retention_would_delete;
    assert.equal(wouldDelete.backups.length, 7);
    assert.ok(wouldDelete.wal_segments > 0);
    assert.ok(metrics.find((metric) => metric.name === 'walship_retention_deletable_bytes')!.value > 0);
    assert.equal(result.state, 'CRITICAL');
    assert.match(result.summary, /^no dump set in the archive; /);
    const unasked = await status(now - HOUR);
    assert.equal((unasked.result.json as { dumps?: unknown }).dumps, undefined, 'a cluster that never dumps is not checked');
  });

  it('writes an exposition promtool accepts, with HELP and TYPE for each series', async () => {
    const { metrics } = await status(now - HOUR);
    const text = await exposition(metrics);
    for (const name of ['walship_status', 'walship_backup_count', 'walship_backup_last_finish_timestamp_seconds', 'walship_wal_last_archived_timestamp_seconds', 'walship_wal_missing_segments', 'walship_recovery_window_start_timestamp_seconds', 'walship_storage_bytes']) {
      assert.match(text, new RegExp(`^# HELP ${name} .+\\n# TYPE ${name} gauge\\n${name}(\\{| )`, 'm'));
    }
    assert.match(text, /^walship_storage_bytes\{kind="wal"\} \d+$/m);
    // promtool's only complaint: the _count suffix of the names issue 13 gives (a lint, not an error).
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = (checked.stdout + checked.stderr).split('\n').filter((line) => line.trim() !== '');
    assert.deepEqual(problems.filter((line) => !/^walship_(backup|archiver_failed)_count non-histogram and non-summary metrics should not have "_count" suffix$/.test(line)), []);
  });
});

describe('the shipped alert rules', () => {
  const rules = join(projectRoot, 'monitoring');

  it('pass promtool check rules', () => {
    const checked = spawnSync('promtool', ['check', 'rules', join(rules, 'walship-rules.yml')], { encoding: 'utf8' });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /SUCCESS: 9 rules found/);
  });

  it('fire on series that breach them and not on healthy ones (promtool test rules)', () => {
    const tested = spawnSync('promtool', ['test', 'rules', 'walship-rules.test.yml'], { cwd: rules, encoding: 'utf8' });
    assert.equal(tested.status, 0, tested.stdout + tested.stderr);
    assert.match(tested.stdout, /SUCCESS/);
  });
});
