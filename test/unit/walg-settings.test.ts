// The WAL-G settings walship refuses or ignores: values that ask for a
// feature, the config file's section settings, and the README's lists.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { parseFlatYaml, parseJsonConfig } from '../../src/config/config-file.ts';
import { refuseUnhonouredSettings, unhonouredSettingNames } from '../../src/config/walg-settings.ts';
import { ConfigError } from '../../src/errors.ts';
import { projectRoot } from '../support/paths.ts';

const check = (env: Record<string, string>, file = new Map<string, string>(), filePath?: string) => () => refuseUnhonouredSettings(new Config(env, file, filePath));

describe('WAL-G settings walship cannot honour', () => {
  it('refuses OpenPGP encryption with one line naming the setting, never its value', () => {
    assert.throws(
      check({ WALG_PGP_KEY: 'secret-key-value-0123456789abcdef' }),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message ===
          "OpenPGP encryption is not supported yet: WALG_PGP_KEY is set, and walship would store the archive unencrypted; unset it and use WAL-G's libsodium encryption (WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH) for a new archive, or keep using WAL-G for this one",
    );
  });

  it('accepts the libsodium settings, and refuses them in another letter case, which walship would ignore', () => {
    assert.doesNotThrow(check({ WALG_LIBSODIUM_KEY: 'secret-key-value-0123456789abcdef', WALG_LIBSODIUM_KEY_TRANSFORM: 'none' }));
    assert.throws(
      check({}, new Map([['walg_libsodium_key', 'secret-key-value-0123456789abcdef']]), '/etc/walship.json'),
      /^ConfigError: walship reads this setting only as WALG_LIBSODIUM_KEY: walg_libsodium_key \(in \/etc\/walship\.json\) is set, and walship would ignore it; rename it WALG_LIBSODIUM_KEY$/,
    );
    assert.throws(check({ Walg_Libsodium_Key_Transform: 'hex' }), /rename it WALG_LIBSODIUM_KEY_TRANSFORM$/);
  });

  it('names the config file a refused setting came from, whatever its letter case', () => {
    assert.throws(check({}, new Map([['walg_pgp_key_path', '/etc/key.asc']]), '/etc/walship.yaml'), /OpenPGP encryption is not supported yet: walg_pgp_key_path \(in \/etc\/walship\.yaml\) is set/);
  });

  it('refuses only the values that ask for what walship does not do', () => {
    const acceptedValues: Record<string, string>[] = [
      { WALG_DELTA_MAX_STEPS: '0' },
      { WALG_TARGET_STORAGE: 'default' },
      { GCS_NORMALIZE_PREFIX: 'true' },
      { S3_RETENTION_PERIOD: '-1' },
      { AZURE_ENVIRONMENT_NAME: 'AzurePublicCloud' },
      { AZURE_ENVIRONMENT_NAME: 'AzureChinaCloud', AZURE_ENDPOINT_SUFFIX: 'core.chinacloudapi.cn' },
    ];
    for (const accepted of acceptedValues) {
      assert.doesNotThrow(check(accepted), JSON.stringify(accepted));
    }
    const refused: [Record<string, string>, RegExp][] = [
      [{ WALG_DELTA_MAX_STEPS: '6' }, /delta backups are not supported yet: WALG_DELTA_MAX_STEPS is set, and walship would take full backups instead/],
      [{ WALG_TARGET_STORAGE: 'backup2' }, /failover storages are not supported yet/],
      [{ WALG_GCS_NORMALIZE_PREFIX: 'false' }, /unnormalized GCS prefixes are not supported yet/],
      [{ S3_RETENTION_PERIOD: '86400' }, /S3 Object Lock retention is not supported yet/],
      [{ AZURE_ENVIRONMENT_NAME: 'AzureChinaCloud' }, /set AZURE_ENDPOINT_SUFFIX instead/],
      [{ S3_SSE_C: 'a2V5' }, /customer-supplied encryption keys are not supported yet: S3_SSE_C is set/],
      [{ WALE_S3_PREFIX: 's3://bucket/path' }, /walship reads this setting only as WALG_S3_PREFIX: WALE_S3_PREFIX is set, and walship would ignore it; rename it WALG_S3_PREFIX$/],
      [{ WALG_SSH_PREFIX: 'ssh://host/path' }, /SSH storage is not supported yet: .* WALG_FILE_PREFIX, WALG_S3_PREFIX, WALG_GS_PREFIX or WALG_AZ_PREFIX/],
      [{ WALG_STORAGE_PREFIX: 'sub' }, /append the subfolder to the storage prefix/],
    ];
    for (const [env, expected] of refused) assert.throws(check(env), expected, JSON.stringify(env));
  });

  it('keeps WAL-G section settings from the config file, so they can be refused by name', () => {
    const yaml = parseFlatYaml(['WALG_FILE_PREFIX: /archive', 'WALG_FAILOVER_STORAGES:', '  STANDBY:', '    WALG_FILE_PREFIX: /other  # comment', '', 'WALG_LOG_LEVEL: DEVEL'].join('\n'), 'f.yaml');
    assert.equal(yaml.get('WALG_FAILOVER_STORAGES'), 'STANDBY:\nWALG_FILE_PREFIX: /other\n');
    assert.equal(yaml.get('WALG_LOG_LEVEL'), 'DEVEL');
    assert.throws(check({}, yaml, 'f.yaml'), /failover storages are not supported yet: WALG_FAILOVER_STORAGES \(in f\.yaml\) is set/);
    const json = parseJsonConfig('{"WALG_FAILOVER_STORAGES": {"STANDBY": {"WALG_FILE_PREFIX": "/other"}}}', 'f.json');
    assert.throws(check({}, json, 'f.json'), /failover storages are not supported yet/);
    // Other settings stay flat.
    assert.throws(() => parseFlatYaml('WALG_FILE_PREFIX:\n  nested: 1\n', 'f.yaml'), /line 2: expected "SETTING: value"/);
  });

  it('accepts the settings that only tune speed or logging', () => {
    assert.doesNotThrow(check({ WALG_NETWORK_RATE_LIMIT: '1000000', WALG_UPLOAD_DISK_CONCURRENCY: '2', WALG_VERIFY_PAGE_CHECKSUMS: 'true' }));
  });

  it('are all listed in the README', () => {
    const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Differences from WAL-G'), readme.indexOf('## The two commands'));
    // The README names a storage setting once, by the name WAL-G documents (S3_SSE_C for WALG_S3_SSE_C and WALE_S3_SSE_C),
    // a WALE_ name by its WALG_ one, and families with a * (PROFILE_*).
    const patterns = [...section.matchAll(/`([A-Z0-9_*]+)/g)].map(([, token]) => new RegExp(`^${token!.replaceAll('*', '[A-Z0-9_]*')}$`));
    const documented = (name: string) =>
      [name, name.replace(/^WALE_/, 'WALG_'), name.replace(/^WAL[EG]_/, '')].some((spelling) => patterns.some((pattern) => pattern.test(spelling)));
    const { refused, ignored } = unhonouredSettingNames();
    assert.deepEqual(refused.filter((name) => !documented(name)), []);
    assert.deepEqual(ignored.filter((name) => !documented(name)), []);
  });
});
