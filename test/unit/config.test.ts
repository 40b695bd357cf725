import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Config, loadConfig } from '../../src/config/config.ts';
import { parseFlatYaml, parseJsonConfig } from '../../src/config/config-file.ts';
import { readCopyPaths, storageConfigFile } from '../../src/config/copies.ts';
import { readCompression, readLogging, readPreferredMethod, readPreventWalOverwrite } from '../../src/config/settings.ts';
import { ConfigError } from '../../src/errors.ts';
import { openConfigured } from '../support/storage.ts';

const directory = mkdtempSync(join(tmpdir(), 'walship-config-'));
after(() => rmSync(directory, { recursive: true, force: true }));

function configFile(name: string, text: string): string {
  const path = join(directory, name);
  writeFileSync(path, text);
  return path;
}

describe('config files', () => {
  it('reads flat YAML with comments and quotes', () => {
    const values = parseFlatYaml(
      ['---', '# archive', 'WALG_FILE_PREFIX: /var/lib/walship  # on NFS', "WALG_COMPRESSION_METHOD: 'brotli'", 'A: "x # y"', 'EMPTY:', ''].join('\n'),
      'f.yaml',
    );
    assert.deepEqual(Object.fromEntries(values), { WALG_FILE_PREFIX: '/var/lib/walship', WALG_COMPRESSION_METHOD: 'brotli', A: 'x # y', EMPTY: '' });
  });

  it('refuses YAML it does not understand, naming the line', () => {
    assert.throws(() => parseFlatYaml('A: 1\n  nested: 2\n', 'f.yaml'), /f\.yaml line 2: expected "SETTING: value"/);
    assert.throws(() => parseFlatYaml('A: [1, 2]\n', 'f.yaml'), /line 1: only plain/);
  });

  it('reads JSON objects of scalars', () => {
    assert.deepEqual(Object.fromEntries(parseJsonConfig('{"A": "x", "B": 3, "C": true}', 'f.json')), { A: 'x', B: '3', C: 'true' });
    assert.throws(() => parseJsonConfig('[1]', 'f.json'), /must hold one JSON object/);
    assert.throws(() => parseJsonConfig('{"A": {"b": 1}}', 'f.json'), /A must be a string, number or boolean/);
    assert.throws(() => parseJsonConfig('{', 'f.json'), /is not valid JSON/);
  });

  it('never quotes the text around a JSON mistake: it may be a key', () => {
    const secret = 'supersecretkeymaterial12345678';
    for (const text of [`{"WALG_LIBSODIUM_KEY": ${secret}}`, `{"WALG_LIBSODIUM_KEY": "${secret}" "x": 1}`, `{"A": 1,\n "WALG_LIBSODIUM_KEY": "${secret}\\q"}`]) {
      assert.throws(
        () => parseJsonConfig(text, 'f.json'),
        (error: Error) => {
          assert.match(error.message, /^config file f\.json is not valid JSON( at line \d+ column \d+)?: check its quotes, commas and braces$/);
          for (let at = 0; at + 4 <= secret.length; at++) assert.ok(!error.message.includes(secret.slice(at, at + 4)), error.message);
          return true;
        },
      );
    }
  });

  it('lets the environment override the file, and names the file in errors', () => {
    const path = configFile('walship.yaml', 'WALG_COMPRESSION_METHOD: brotli\nWALG_COMPRESSION_LEVEL: 99\n');
    const fromFile = loadConfig({ configPath: path, env: {} });
    assert.equal(fromFile.get('WALG_COMPRESSION_METHOD'), 'brotli');
    assert.throws(() => readCompression(fromFile), new RegExp(`WALG_COMPRESSION_LEVEL \\(in ${path.replaceAll('.', '\\.')}\\)="99" is invalid: expected a whole number from 0 to 11`));
    const overridden = loadConfig({ configPath: path, env: { WALG_COMPRESSION_METHOD: 'zstd', WALG_COMPRESSION_LEVEL: '3' } });
    assert.deepEqual(readCompression(overridden), { method: 'zstd', level: 3 });
  });

  it('finds the file through WALG_CONFIG_PATH and reports a missing one clearly', () => {
    const path = configFile('walship.json', '{"WALG_LOG_LEVEL": "DEVEL"}');
    assert.deepEqual(readLogging(loadConfig({ env: { WALG_CONFIG_PATH: path } })), { level: 'debug', format: 'text' });
    assert.throws(() => loadConfig({ env: { WALG_CONFIG_PATH: join(directory, 'nope.yaml') } }), /cannot read config file .*nope\.yaml \(ENOENT\)/);
  });
});

describe('settings validation', () => {
  it('defaults to zstd level 1 and validates methods and levels', () => {
    assert.deepEqual(readCompression(new Config({})), { method: 'zstd', level: 1 });
    assert.deepEqual(readCompression(new Config({ WALG_COMPRESSION_METHOD: 'NONE', WALG_COMPRESSION_LEVEL: '99' })), { method: 'none', level: 0 });
    assert.throws(() => readCompression(new Config({ WALG_COMPRESSION_METHOD: 'lz4' })), /WALG_COMPRESSION_METHOD="lz4" is invalid: expected one of zstd, brotli, none \(walship reads WAL-G's lz4 objects, but does not write them\)/);
    // Readers only choose what to look for first: WAL-G's configuration restores as it is.
    assert.equal(readPreferredMethod(new Config({ WALG_COMPRESSION_METHOD: 'LZ4' })), 'lz4');
    assert.equal(readPreferredMethod(new Config({})), 'zstd');
    assert.throws(() => readPreferredMethod(new Config({ WALG_COMPRESSION_METHOD: 'gzip' })), /expected one of zstd, brotli, none, lz4, lzma/);
    assert.throws(() => readCompression(new Config({ WALG_COMPRESSION_LEVEL: '1.5' })), /WALG_COMPRESSION_LEVEL="1.5" is invalid/);
    assert.throws(() => readCompression(new Config({ WALG_COMPRESSION_LEVEL: '23' })), /from -7 to 22/);
  });

  it('parses booleans strictly', () => {
    assert.equal(readPreventWalOverwrite(new Config({})), true);
    assert.equal(readPreventWalOverwrite(new Config({ WALG_PREVENT_WAL_OVERWRITE: 'False' })), false);
    assert.throws(() => readPreventWalOverwrite(new Config({ WALG_PREVENT_WAL_OVERWRITE: 'nope' })), /expected true or false/);
  });

  it('accepts WAL-G log levels', () => {
    assert.equal(readLogging(new Config({ WALG_LOG_LEVEL: 'NORMAL' })).level, 'info');
    assert.equal(readLogging(new Config({})).level, 'warning');
    assert.throws(() => readLogging(new Config({ WALG_LOG_LEVEL: 'LOUD' })), /expected ERROR, WARNING, NORMAL or DEVEL/);
  });

  it('never shows secret values in errors', () => {
    const config = new Config({ AWS_SECRET_ACCESS_KEY: 'hunter2-secret' });
    assert.doesNotMatch(config.invalid('AWS_SECRET_ACCESS_KEY', 'something').message, /hunter2/);
    assert.match(config.invalid('AWS_SECRET_ACCESS_KEY', 'something').message, /\(hidden\)/);
  });

  it('requires exactly one storage, as an absolute existing directory', async () => {
    await assert.rejects(openConfigured(new Config({})), /no storage configured: set WALG_FILE_PREFIX, WALG_S3_PREFIX, WALG_GS_PREFIX or WALG_AZ_PREFIX/);
    await assert.rejects(openConfigured(new Config({ WALG_FILE_PREFIX: 'relative/dir' })), /WALG_FILE_PREFIX="relative\/dir" is invalid: expected an absolute path/);
    await assert.rejects(openConfigured(new Config({ WALG_FILE_PREFIX: join(directory, 'missing') })), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /missing does not exist: create the directory/);
      return true;
    });
    const storage = await openConfigured(new Config({ WALG_FILE_PREFIX: directory }));
    assert.equal(storage.location, `file://${directory}`);
  });
});

describe('copies (WALSHIP_COPIES)', () => {
  it('names absolute config files, separated by commas or colons, each once', () => {
    assert.deepEqual(readCopyPaths(new Config({ WALSHIP_COPIES: '/etc/a.yaml, /etc/b.json:/etc/c.yaml' })), ['/etc/a.yaml', '/etc/b.json', '/etc/c.yaml']);
    assert.deepEqual(readCopyPaths(new Config({})), []);
    assert.throws(() => readCopyPaths(new Config({ WALSHIP_COPIES: 'copy.yaml' })), /WALSHIP_COPIES names "copy.yaml": expected absolute paths/);
    assert.throws(() => readCopyPaths(new Config({ WALSHIP_COPIES: '/etc/a.yaml,/etc/a.yaml' })), /names a config file twice/);
  });

  it("reads a copy's file on its own: the environment's storage never leaks into it", () => {
    const path = configFile('copy.yaml', 'WALG_S3_PREFIX: s3://copy/main\nAWS_REGION: eu-central-1\n');
    const previous = process.env.WALG_FILE_PREFIX;
    process.env.WALG_FILE_PREFIX = directory;
    try {
      const copy = storageConfigFile(path);
      assert.deepEqual([copy.get('WALG_S3_PREFIX'), copy.get('WALG_FILE_PREFIX')], ['s3://copy/main', undefined]);
    } finally {
      if (previous === undefined) delete process.env.WALG_FILE_PREFIX;
      else process.env.WALG_FILE_PREFIX = previous;
    }
    assert.throws(() => storageConfigFile(join(directory, 'missing.yaml')), /cannot read config file .*missing\.yaml \(ENOENT\): check WALSHIP_COPIES/);
    // A copy of an encrypted archive names the key in its own file, to restore from it.
    assert.equal(storageConfigFile(configFile('sodium.yaml', 'WALG_FILE_PREFIX: /x\nWALG_LIBSODIUM_KEY: k\n')).get('WALG_LIBSODIUM_KEY'), 'k');
  });
});
