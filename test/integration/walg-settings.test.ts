// The built binary fails closed on WAL-G settings it cannot honour: every
// command refuses at start, with its own failure code, before it touches
// storage; settings that only tune speed are accepted, and named at DEVEL.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { walshipBinary } from '../support/paths.ts';
import { removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-walg-settings-'));
after(() => removeAfterHelpers(root));

/** Every setting WAL-G reads to encrypt or decrypt but libsodium's (internal/config/config.go, internal/configure.go), and how walship names it. */
const ENCRYPTION_SETTINGS: [setting: string, kind: string][] = [
  ...['WALG_PGP_KEY', 'WALG_PGP_KEY_PATH', 'WALG_PGP_KEY_PASSPHRASE', 'GPG_KEY_ID', 'WALG_GPG_KEY_ID', 'WALE_GPG_KEY_ID'].map((name): [string, string] => [name, 'OpenPGP']),
  ...['WALG_CSE_KMS_ID', 'WALG_CSE_KMS_REGION', 'YC_CSE_KMS_KEY_ID', 'YC_SERVICE_ACCOUNT_KEY_FILE'].map((name): [string, string] => [name, 'KMS']),
  ...[
    'WALG_ENVELOPE_PGP_KEY', 'WALG_ENVELOPE_PGP_KEY_PATH', 'WALG_ENVELOPE_PGP_YC_CSE_KMS_KEY_ID',
    'WALG_ENVELOPE_PGP_YC_SERVICE_ACCOUNT_KEY_FILE', 'WALG_ENVELOPE_PGP_YC_ENDPOINT', 'WALG_ENVELOPE_CACHE_EXPIRATION',
  ].map((name): [string, string] => [name, 'OpenPGP']),
];
const SECRET = 'not-a-real-key-5b7e0c1d9a2f4e6b';
const SEGMENT = '000000010000000000000005';

let archive: string;
let dataDir: string;
let restoreDir: string;

/** The archive's files and their contents, to prove a refused command left it alone. */
function snapshot(directory: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (path: string) => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      if (statSync(child).isDirectory()) walk(child);
      else files[relative(directory, child)] = readFileSync(child, 'base64');
    }
  };
  walk(directory);
  return files;
}

function walship(args: string[], env: Record<string, string>) {
  return run(walshipBinary, args, { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', ...env } });
}

/** Each command as a DBA or PostgreSQL runs it, and the exit code of its failures. */
const COMMANDS: { args: () => string[]; failure: number }[] = [
  { args: () => ['wal-push', `pg_wal/${SEGMENT}`], failure: 1 },
  { args: () => ['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], failure: 255 },
  { args: () => ['backup-push'], failure: 1 },
  { args: () => ['backup-fetch', restoreDir, 'LATEST'], failure: 1 },
];

function assertRefused(result: { code: number; stderr: string }, expectedCode: number, pattern: RegExp, what: string): void {
  assert.equal(result.code, expectedCode, `${what}: ${result.stderr}`);
  assert.match(result.stderr, pattern, what);
  assert.equal(result.stderr.trim().split('\n').length, 1, `${what}: one line: ${result.stderr}`);
  assert.ok(!result.stderr.includes(SECRET), `${what}: the value is never printed`);
}

beforeEach(() => {
  const case_ = mkdtempSync(join(root, 'case-'));
  archive = join(case_, 'archive');
  dataDir = join(case_, 'data');
  restoreDir = join(case_, 'restored');
  mkdirSync(join(archive, 'wal_005'), { recursive: true });
  writeFileSync(join(archive, 'wal_005', '000000010000000000000004.zst'), 'stored by an earlier push');
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dataDir, 'pg_wal', SEGMENT), asWalSegment(Buffer.alloc(1 << 20, 7)));
});

describe('WAL-G settings walship cannot honour', () => {
  it('every encryption setting but libsodium makes wal-push, wal-fetch, backup-push and backup-fetch refuse without touching storage', async () => {
    const before = snapshot(archive);
    for (const [name, kind] of ENCRYPTION_SETTINGS) {
      const pattern = new RegExp(`${kind} encryption is not supported yet: ${name} is set, and walship would store the archive unencrypted; unset it and use WAL-G's libsodium encryption`);
      await Promise.all(
        COMMANDS.map(async (command) => {
          const args = command.args();
          assertRefused(await walship(args, { [name]: SECRET }), command.failure, pattern, `${args[0]} with ${name}`);
        }),
      );
    }
    assert.deepEqual(snapshot(archive), before, 'storage untouched');
    assert.ok(!existsSync(restoreDir), 'backup-fetch created nothing');
    assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')), 'wal-fetch wrote nothing');
  });

  it('refuses before anything else is checked: storage, server and arguments', async () => {
    for (const command of COMMANDS) {
      const args = command.args();
      // Without the key each of these would fail otherwise: no such archive, no server to back up.
      const result = await walship(args, { WALG_FILE_PREFIX: join(root, 'no-such-archive'), PGHOST: join(root, 'no-such-socket-dir'), WALG_PGP_KEY: SECRET });
      assertRefused(result, command.failure, /^walship \S+: ERROR: OpenPGP encryption is not supported yet: WALG_PGP_KEY is set/, args[0]!);
    }
  });

  it('refuses a setting from the config file too, naming the file', async () => {
    const yaml = join(root, 'walg.yaml');
    writeFileSync(yaml, `WALG_FILE_PREFIX: ${archive}\nWALG_PGP_KEY_PATH: /etc/walg/${SECRET}.asc\n`);
    const json = join(root, 'walg.json');
    writeFileSync(json, JSON.stringify({ walg_libsodium_key: SECRET }));
    const before = snapshot(archive);
    for (const command of COMMANDS) {
      const args = command.args();
      assertRefused(await walship(['--config', yaml, ...args], {}), command.failure, new RegExp(`WALG_PGP_KEY_PATH \\(in ${yaml}\\) is set`), `${args[0]} --config yaml`);
      assertRefused(await walship(['--config', json, ...args], {}), command.failure, new RegExp(`walg_libsodium_key \\(in ${json}\\) is set, and walship would ignore it; rename it WALG_LIBSODIUM_KEY`), `${args[0]} --config json`);
    }
    assert.deepEqual(snapshot(archive), before);
  });

  it('wal-fetch on a standby refuses with exit 1, so the standby retries instead of stopping', async () => {
    writeFileSync(join(dataDir, 'standby.signal'), '');
    const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], { WALG_PGP_KEY: SECRET });
    assertRefused(result, 1, /OpenPGP encryption is not supported yet/, 'wal-fetch on a standby');
  });

  it('refuses the other settings that change what is stored, each with its reason', async () => {
    const failoverConfig = join(root, 'failover.yaml');
    writeFileSync(failoverConfig, `WALG_FILE_PREFIX: ${archive}\nWALG_FAILOVER_STORAGES:\n  STANDBY:\n    WALG_FILE_PREFIX: /srv/other\n`);
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['wal-push', `pg_wal/${SEGMENT}`], { WALG_S3_SSE_C: SECRET }, /customer-supplied encryption keys are not supported yet: WALG_S3_SSE_C is set/],
      [['wal-push', `pg_wal/${SEGMENT}`], { GCS_ENCRYPTION_KEY: SECRET }, /customer-supplied encryption keys are not supported yet: GCS_ENCRYPTION_KEY is set/],
      [['backup-push'], { WALG_DELTA_MAX_STEPS: '7' }, /delta backups are not supported yet: WALG_DELTA_MAX_STEPS is set/],
      [['--config', failoverConfig, 'wal-push', `pg_wal/${SEGMENT}`], {}, /failover storages are not supported yet: WALG_FAILOVER_STORAGES \(in .*failover\.yaml\) is set/],
      [['wal-push', `pg_wal/${SEGMENT}`], { WALG_SWIFT_PREFIX: 'swift://container/path' }, /Swift storage is not supported yet/],
      [['wal-push', `pg_wal/${SEGMENT}`], { WALE_S3_PREFIX: 's3://bucket/path' }, /rename it WALG_S3_PREFIX/],
    ];
    const before = snapshot(archive);
    for (const [args, env, pattern] of cases) assertRefused(await walship(args, env), 1, pattern, `${args.join(' ')} ${JSON.stringify(env)}`);
    assert.deepEqual(snapshot(archive), before);
  });

  it('accepts a setting that only tunes speed, quietly, and names it at DEVEL', async () => {
    const quiet = await walship(['wal-push', `pg_wal/${SEGMENT}`], { WALG_NETWORK_RATE_LIMIT: '1048576', WALG_DELTA_MAX_STEPS: '0' });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    const devel = await walship(['wal-push', `pg_wal/${SEGMENT}`], { WALG_NETWORK_RATE_LIMIT: '1048576', WALG_UPLOAD_DISK_CONCURRENCY: '4', WALG_LOG_LEVEL: 'DEVEL' });
    assert.equal(devel.code, 0, devel.stderr);
    const lines = devel.stderr.split('\n').filter((line) => line.includes('accepted and ignored'));
    assert.equal(lines.length, 1, devel.stderr);
    assert.match(lines[0]!, /DEBUG: WAL-G settings accepted and ignored: .*WALG_NETWORK_RATE_LIMIT \(walship does not throttle\)/);
    assert.match(lines[0]!, /WALG_UPLOAD_DISK_CONCURRENCY/);
    assert.ok(existsSync(join(archive, 'wal_005', `${SEGMENT}.zst`)));
  });
});
