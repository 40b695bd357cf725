// The built binary's contract with archive_command and restore_command:
// exit codes, idempotency, overwrite refusal, atomic fetch, clear errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { projectRoot, walshipBinary } from '../support/paths.ts';
import { startS3rver } from '../support/emulators.ts';
import { freePort, removeAfterHelpers, run } from '../support/processes.ts';
import { asWalSegment } from '../support/wal.ts';
import { MAIN_THREAD_COMPILATION } from '../../src/util/exit-safety.ts';
import { BOUNDED_YOUNG_GENERATION } from '../../src/util/memory.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-cli-'));
after(() => removeAfterHelpers(root));

const SEGMENT = '000000010000000000000007';
let archive: string;
let dataDir: string;
let counter = 0;

function walship(args: string[], env: Record<string, string> = {}) {
  return run(walshipBinary, args, { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', ...env } });
}

function writeWal(name: string, content: Buffer): string {
  writeFileSync(join(dataDir, 'pg_wal', name), content);
  return `pg_wal/${name}`;
}

/** Segment-like content: a segment's page header, then mostly compressible, with some noise. */
function segmentContent(): Buffer {
  return asWalSegment(Buffer.concat([Buffer.alloc(1 << 20, counter++), randomBytes(64 << 10), Buffer.alloc(1 << 20)]));
}

beforeEach(() => {
  const case_ = mkdtempSync(join(root, 'case-'));
  archive = join(case_, 'archive');
  dataDir = join(case_, 'data');
  mkdirSync(archive);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
});

describe('walship wal-push', () => {
  it('archives a segment, and an identical re-push exits 0', async () => {
    const content = segmentContent();
    const path = writeWal(SEGMENT, content);
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await walship(['wal-push', path]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '', 'quiet on success by default');
    }
    assert.ok(existsSync(join(archive, 'wal_005', `${SEGMENT}.zst`)));
    assert.ok(readFileSync(join(archive, 'wal_005', `${SEGMENT}.zst`)).length < content.length / 4);
  });

  it('refuses different content, and never overwrites it', async () => {
    const path = writeWal(SEGMENT, segmentContent());
    assert.equal((await walship(['wal-push', path])).code, 0);
    const stored = readFileSync(join(archive, 'wal_005', `${SEGMENT}.zst`));
    writeWal(SEGMENT, segmentContent());
    const result = await walship(['wal-push', path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refusing to overwrite wal_005\/000000010000000000000007\.zst/);
    assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    assert.ok(readFileSync(join(archive, 'wal_005', `${SEGMENT}.zst`)).equals(stored));
  });

  it('overwrites segments only when WALG_PREVENT_WAL_OVERWRITE=false, and history files never', async () => {
    const path = writeWal(SEGMENT, segmentContent());
    assert.equal((await walship(['wal-push', path])).code, 0);
    const replacement = segmentContent();
    writeWal(SEGMENT, replacement);
    const overwritten = await walship(['wal-push', path], { WALG_PREVENT_WAL_OVERWRITE: 'false' });
    assert.equal(overwritten.code, 0, overwritten.stderr);
    assert.equal((await walship(['wal-fetch', SEGMENT, 'restored'])).code, 0);
    assert.ok(readFileSync(join(dataDir, 'restored')).equals(replacement));

    const history = writeWal('00000002.history', Buffer.from('1\t0/3000000\tbefore 2000-01-01\n'));
    assert.equal((await walship(['wal-push', history])).code, 0);
    writeWal('00000002.history', Buffer.from('1\t0/4000000\tdifferent\n'));
    const refused = await walship(['wal-push', history], { WALG_PREVENT_WAL_OVERWRITE: 'false' });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /history files are never overwritten/);
  });

  it('finds an identical copy stored with another compression method', async () => {
    const path = writeWal(SEGMENT, segmentContent());
    assert.equal((await walship(['wal-push', path], { WALG_COMPRESSION_METHOD: 'brotli' })).code, 0);
    assert.equal((await walship(['wal-push', path])).code, 0);
    assert.deepEqual(readdirSync(join(archive, 'wal_005')), [`${SEGMENT}.br`]);
  });

  it('accepts .history, .partial and .backup files and refuses other names', async () => {
    for (const name of ['00000003.history', `${SEGMENT}.partial`, `${SEGMENT}.00000028.backup`]) {
      const content = name.endsWith('.partial') ? segmentContent() : Buffer.from(name);
      const result = await walship(['wal-push', writeWal(name, content)]);
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    }
    const refused = await walship(['wal-push', writeWal('RECOVERYXLOG', Buffer.from('x'))]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /"RECOVERYXLOG" is not a WAL file name/);
  });

  it('refuses a file named like a segment that is not WAL, before touching storage', async () => {
    for (const name of [SEGMENT, `${SEGMENT}.partial`]) {
      const result = await walship(['wal-push', writeWal(name, Buffer.alloc(1 << 16, 0x41))]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`pg_wal/${name} is not a WAL file of PostgreSQL 13 or later: its page magic is 0x4141`));
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    }
    assert.deepEqual(readdirSync(archive), []);
  });

  it('fails with exit 1 and one line for a missing file or bad configuration, without a stack trace', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['wal-push', `pg_wal/${SEGMENT}`], {}, /cannot read pg_wal\/000000010000000000000007/],
      [['wal-push', writeWal(SEGMENT, Buffer.from('x'))], { WALG_FILE_PREFIX: '' }, /no storage configured: set WALG_FILE_PREFIX/],
      [['wal-push', `pg_wal/${SEGMENT}`], { WALG_FILE_PREFIX: '/nonexistent/archive' }, /WALG_FILE_PREFIX=\/nonexistent\/archive does not exist/],
      [['wal-push', `pg_wal/${SEGMENT}`], { WALG_COMPRESSION_METHOD: 'lz4' }, /WALG_COMPRESSION_METHOD="lz4" is invalid/],
      [['wal-push', `pg_wal/${SEGMENT}`], { WALG_COMPRESSION_LEVEL: 'fast' }, /WALG_COMPRESSION_LEVEL="fast" is invalid/],
      [['wal-push'], {}, /missing required argument 'wal_path'/],
      [['wal-push', `pg_wal/${SEGMENT}`, '--config', '/nonexistent.yaml'], {}, /cannot read config file \/nonexistent\.yaml/],
    ];
    for (const [args, env, expected] of cases) {
      rmSync(join(dataDir, 'pg_wal', SEGMENT), { force: true });
      if (args[1]?.startsWith('pg_wal/') && !expected.source.startsWith('cannot read pg_wal')) writeWal(SEGMENT, Buffer.from('x'));
      const result = await walship(args, env);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
  });
});

describe('walship wal-fetch', () => {
  async function pushSegment(content = segmentContent(), env: Record<string, string> = {}): Promise<Buffer> {
    const result = await walship(['wal-push', writeWal(SEGMENT, content)], env);
    assert.equal(result.code, 0, result.stderr);
    return content;
  }

  it('restores the exact bytes, whatever compression is configured now', async () => {
    const content = await pushSegment(segmentContent(), { WALG_COMPRESSION_METHOD: 'none' });
    for (const method of ['zstd', 'brotli', 'none']) {
      const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], { WALG_COMPRESSION_METHOD: method });
      assert.equal(result.code, 0, result.stderr);
      assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(content));
    }
  });

  it('exits 74 for a file that is not in the archive, quietly', async () => {
    await pushSegment();
    for (const name of ['000000010000000000000008', '00000002.history']) {
      const result = await walship(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
      assert.equal(result.code, 74, result.stderr);
      assert.equal(result.stderr, '');
      assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')));
    }
  });

  it('treats an archive with no WAL at all as an error, not as "not found"', async () => {
    const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(result.code, 255);
    assert.match(result.stderr, /holds no wal_005\/ objects at all: check the storage prefix/);
  });

  it('fails on a corrupted object and leaves nothing at the destination', async () => {
    await pushSegment();
    const stored = join(archive, 'wal_005', `${SEGMENT}.zst`);
    const corrupted = readFileSync(stored);
    corrupted[Math.floor(corrupted.length / 2)]! ^= 0xff;
    writeFileSync(stored, corrupted);
    writeFileSync(join(dataDir, 'recovery.signal'), '');
    const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(result.code, 255, 'targeted recovery must stop, not promote');
    assert.match(result.stderr, /ERROR/);
    assert.deepEqual(readdirSync(join(dataDir, 'pg_wal')), [SEGMENT]);
  });

  it('detects corruption through the stored CRC-32 even without compression', async () => {
    await pushSegment(segmentContent(), { WALG_COMPRESSION_METHOD: 'none' });
    const stored = join(archive, 'wal_005', SEGMENT);
    const corrupted = readFileSync(stored);
    corrupted[100]! ^= 0x01;
    writeFileSync(stored, corrupted);
    const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(result.code, 255);
    assert.match(result.stderr, /is corrupt: CRC-32/);
    assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')));
  });

  it('exits 1 on a standby, so it retries instead of stopping', async () => {
    writeFileSync(join(dataDir, 'standby.signal'), '');
    writeFileSync(join(dataDir, 'recovery.signal'), '');
    const result = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], { WALG_FILE_PREFIX: '/nonexistent' });
    assert.equal(result.code, 1);
    const badUsage = await walship(['wal-fetch', SEGMENT]);
    assert.equal(badUsage.code, 1);
  });

  it('never reports bad usage or configuration as "not found" in recovery', async () => {
    writeFileSync(join(dataDir, 'recovery.signal'), '');
    for (const [args, env] of [
      [['wal-fetch', SEGMENT], {}],
      [['wal-fetch', 'not-a-wal-name', 'pg_wal/RECOVERYXLOG'], {}],
      [['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], { WALG_FILE_PREFIX: 'relative' }],
    ] as [string[], Record<string, string>][]) {
      const result = await walship(args, env);
      assert.equal(result.code, 255, `${args.join(' ')}: ${result.stderr}`);
    }
  });
});

describe("the binary's zstd", () => {
  it('caches the native addon privately and atomically, and falls back to node:zlib where it cannot, each reading what the other wrote', async () => {
    const cache = join(root, 'zstd-cache');
    const native = { WALSHIP_CACHE_DIR: cache, WALG_LOG_LEVEL: 'DEVEL' };
    // Nowhere to cache the addon: every candidate directory lies under a file.
    const blocked = join(root, 'a-file');
    writeFileSync(blocked, '');
    const fallback = { WALSHIP_CACHE_DIR: blocked, XDG_CACHE_HOME: blocked, HOME: blocked, TMPDIR: blocked, WALG_LOG_LEVEL: 'DEVEL' };
    const unavailable = /zstd-napi unavailable, using node:zlib zstd/;

    const first = segmentContent();
    const pushed = await walship(['wal-push', writeWal(SEGMENT, first)], native);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.doesNotMatch(pushed.stderr, unavailable);
    const cached = readdirSync(cache);
    assert.equal(cached.length, 1, `only the addon, no temp file: ${cached.join(', ')}`);
    assert.match(cached[0]!, /^zstd-napi-[0-9a-f]{16}\.node$/);
    assert.equal(statSync(join(cache, cached[0]!)).mode & 0o777, 0o700);

    const fetched = await walship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG'], fallback);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stderr, unavailable);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(first));

    const second = segmentContent();
    const other = '000000010000000000000008';
    const pushedByZlib = await walship(['wal-push', writeWal(other, second)], fallback);
    assert.equal(pushedByZlib.code, 0, pushedByZlib.stderr);
    assert.match(pushedByZlib.stderr, unavailable);
    const fetchedNatively = await walship(['wal-fetch', other, 'pg_wal/RECOVERYXLOG.2'], native);
    assert.equal(fetchedNatively.code, 0, fetchedNatively.stderr);
    assert.ok(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG.2')).equals(second));
  });
});

describe('a command that stops before it finishes', () => {
  // Run from source with the file system's stat() never answering: the event loop drains while wal-fetch opens its storage.
  const stallStat = `data:text/javascript,${encodeURIComponent(
    "import fs from 'node:fs/promises'; import { syncBuiltinESMExports } from 'node:module'; fs.stat = () => new Promise(() => {}); syncBuiltinESMExports();",
  )}`;
  const stalledWalship = (args: string[]) =>
    run(process.execPath, ['--import', stallStat, join(projectRoot, 'src', 'cli.ts'), ...args], {
      cwd: dataDir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false' },
    });

  it("exits with the command's failure code, never 0: wal-fetch's is 255 in targeted recovery and 1 on a standby", async () => {
    writeFileSync(join(dataDir, 'recovery.signal'), '');
    const targeted = await stalledWalship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(targeted.code, 255, targeted.stderr);
    assert.match(targeted.stderr, /internal error: the command stopped before it finished/);

    writeFileSync(join(dataDir, 'standby.signal'), '');
    const standby = await stalledWalship(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG']);
    assert.equal(standby.code, 1, standby.stderr);
    assert.match(standby.stderr, /internal error: the command stopped before it finished/);
  });
});

describe('walship help and version', () => {
  it('prints the version and help with examples for every command', async () => {
    const version = await walship(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^walship \d+\.\d+\.\d+/);
    const help = await walship(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /WALG_FILE_PREFIX/);
    for (const command of ['wal-push', 'wal-fetch']) {
      const commandHelp = await walship([command, '--help']);
      assert.equal(commandHelp.code, 0);
      assert.match(commandHelp.stdout, new RegExp(`Examples:\\n.*walship ${command}`));
    }
  });
});

describe("the binary's V8 flags", () => {
  /** The binary's execArgv, as it logs them at debug level, and what it printed. */
  const binaryFlags = async () => {
    const result = await walship(['backup-list'], { WALG_FILE_PREFIX: '/nonexistent/walship-flags', WALG_LOG_LEVEL: 'DEVEL' });
    return { flags: /v8Flags=(.*)$/m.exec(result.stderr)?.[1]?.split(' ') ?? [], stderr: result.stderr };
  };

  it('compile on the main thread from start-up (src/util/exit-safety.ts), where V8 makes its compile dispatchers', async () => {
    const { flags, stderr } = await binaryFlags();
    for (const flag of MAIN_THREAD_COMPILATION) assert.ok(flags.includes(flag), `${flag} missing from the binary's execArgv: ${stderr}`);
  });

  it("bound V8's young generation (src/util/memory.ts), which a long listing would otherwise grow to 64 MiB semi-spaces", async () => {
    const { flags, stderr } = await binaryFlags();
    for (const flag of BOUNDED_YOUNG_GENERATION) assert.ok(flags.includes(flag), `${flag} missing from the binary's execArgv: ${stderr}`);
  });
});

describe('the cloud SDKs embedded in the binary', () => {
  it("load with the build's code cache, which V8 accepts under walship's flags", async () => {
    // Nothing listens on the port: each command loads its SDK, then fails on the first request.
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const backends: [string, Record<string, string>][] = [
      ['aws', { WALG_S3_PREFIX: 's3://bucket/x', AWS_REGION: 'us-east-1', AWS_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' }],
      ['gcs', { WALG_GS_PREFIX: 'gs://bucket/x', WALG_GS_ENDPOINT: endpoint }],
      ['azure', { WALG_AZ_PREFIX: 'azure://container/x', AZURE_STORAGE_ACCOUNT: 'account', AZURE_STORAGE_SAS_TOKEN: 'sig=x', WALG_AZ_ENDPOINT: endpoint }],
    ];
    for (const [bundle, settings] of backends) {
      const result = await walship(['backup-list'], { ...settings, WALG_FILE_PREFIX: '', WALG_LOG_LEVEL: 'DEVEL', WALG_STORAGE_MAX_ATTEMPTS: '1' });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`loaded embedded ${bundle} .*codeCache=accepted`), result.stderr);
    }
  });

  it("find S3 credentials through the SDK's chain: a shared profile, and web identity (its request to STS)", async () => {
    const s3rver = await startS3rver();
    try {
      const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...withoutKeys } = s3rver.settings('credential-chain');
      const credentials = join(dataDir, '..', 'aws-credentials');
      writeFileSync(credentials, `[walship]\naws_access_key_id = ${AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n`);
      const chain = { ...withoutKeys, WALG_FILE_PREFIX: '', AWS_CONFIG_FILE: join(dataDir, '..', 'no-aws-config'), WALG_STORAGE_MAX_ATTEMPTS: '1' };
      const profile = { ...chain, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_PROFILE: 'walship' };
      const content = segmentContent();
      const pushed = await walship(['wal-push', writeWal(SEGMENT, content)], profile);
      assert.equal(pushed.code, 0, pushed.stderr);
      const fetched = await walship(['wal-fetch', SEGMENT, 'restored'], profile);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.deepEqual(readFileSync(join(dataDir, 'restored')), content);

      // No STS here: the request the web identity provider sends to the STS endpoint set is its proof of life.
      writeFileSync(join(dataDir, '..', 'token'), 'web-identity-token');
      const sts = await freePort();
      const webIdentity = { ...chain, AWS_WEB_IDENTITY_TOKEN_FILE: join(dataDir, '..', 'token'), AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/walship', AWS_ENDPOINT_URL_STS: `http://127.0.0.1:${sts}` };
      const listed = await walship(['backup-list'], webIdentity);
      assert.equal(listed.code, 1, listed.stderr);
      assert.match(listed.stderr, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${sts}`), listed.stderr);
    } finally {
      await s3rver.stop();
    }
  });
});
