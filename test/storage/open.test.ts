/**
 * Choosing and configuring a backend: only the configured backend's SDK is
 * loaded, and every setting is validated up front with one line naming it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { projectRoot } from '../support/paths.ts';
import { openConfigured } from '../support/storage.ts';

const SDKS = ['@aws-sdk/client-s3', '@google-cloud/storage', '@azure/storage-blob'];

/** Opens storage in a fresh process and reports which cloud SDKs it loaded. */
function sdksLoadedOpening(settings: Record<string, string>): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = new Set();
    registerHooks({ resolve(specifier, context, next) {
      const result = next(specifier, context);
      for (const sdk of ${JSON.stringify(SDKS)}) if (result.url.includes('/node_modules/' + sdk + '/')) loaded.add(sdk);
      return result;
    } });
    const { Config } = await import(${JSON.stringify(join(projectRoot, 'src/config/config.ts'))});
    const { openStorage } = await import(${JSON.stringify(join(projectRoot, 'src/storage/open.ts'))});
    const { storageSpecFrom } = await import(${JSON.stringify(join(projectRoot, 'src/storage/spec.ts'))});
    await openStorage(storageSpecFrom(new Config(${JSON.stringify(settings)})));
    console.log(JSON.stringify([...loaded]));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as string[];
}

describe('openStorage', () => {
  test('loads only the SDK of the configured backend', () => {
    assert.deepEqual(sdksLoadedOpening({ WALG_FILE_PREFIX: projectRoot }), []);
    assert.deepEqual(sdksLoadedOpening({ WALG_S3_PREFIX: 's3://bucket/path', AWS_REGION: 'eu-west-1' }), ['@aws-sdk/client-s3']);
    assert.deepEqual(sdksLoadedOpening({ WALG_GS_PREFIX: 'gs://bucket/path' }), ['@google-cloud/storage']);
    assert.deepEqual(
      sdksLoadedOpening({ WALG_AZ_PREFIX: 'azure://container/path', AZURE_STORAGE_ACCOUNT: 'account', AZURE_STORAGE_SAS_TOKEN: 'sv=2024&sig=x' }),
      ['@azure/storage-blob'],
    );
  });

  test('describes the location without credentials', async () => {
    const s3 = await openConfigured(new Config({ WALG_S3_PREFIX: 's3://bucket/a/b/', AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'topsecret' }));
    assert.equal(s3.location, 's3://bucket/a/b/');
    const azure = await openConfigured(new Config({ WALG_AZ_PREFIX: 'azure://container', AZURE_STORAGE_ACCOUNT: 'account', AZURE_STORAGE_SAS_TOKEN: 'sig=topsecret' }));
    assert.equal(azure.location, 'azure://container/ (account account)');
    const gcs = await openConfigured(new Config({ WALG_GS_PREFIX: 'gs://bucket//x' }));
    assert.equal(gcs.location, 'gs://bucket/x/');
  });

  const invalid: [Record<string, string>, RegExp][] = [
    [{ WALG_S3_PREFIX: 'bucket/path' }, /^WALG_S3_PREFIX="bucket\/path" is invalid: expected s3:\/\/bucket\/path/],
    [{ WALG_S3_PREFIX: 's3://bucket/../x', AWS_REGION: 'x' }, /WALG_S3_PREFIX.*without \. or \.\./],
    [{ WALG_S3_PREFIX: 's3://bucket' }, /^AWS_REGION is not set/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_ENDPOINT: 'localhost:9000' }, /^AWS_ENDPOINT="localhost:9000" is invalid/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', WALG_S3_STORAGE_CLASS: 'cold' }, /^WALG_S3_STORAGE_CLASS="cold" is invalid: expected one of STANDARD/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', WALG_S3_SSE_KMS_ID: 'key' }, /^WALG_S3_SSE_KMS_ID is set but WALG_S3_SSE is not aws:kms/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', AWS_ACCESS_KEY_ID: 'AKIA' }, /^AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', WALG_S3_CA_CERT_FILE: '/no/such/ca.pem' }, /^WALG_S3_CA_CERT_FILE=\/no\/such\/ca.pem cannot be read \(ENOENT\)/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', AWS_S3_FORCE_PATH_STYLE: 'maybe' }, /^AWS_S3_FORCE_PATH_STYLE="maybe" is invalid: expected true or false/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', WALG_STORAGE_MAX_ATTEMPTS: '0' }, /^WALG_STORAGE_MAX_ATTEMPTS="0" is invalid/],
    [{ WALG_S3_PREFIX: 's3://bucket', AWS_REGION: 'x', WALG_STORAGE_REQUEST_TIMEOUT: '1.5' }, /^WALG_STORAGE_REQUEST_TIMEOUT="1.5" is invalid/],
    [{ WALG_GS_PREFIX: 'gs://bucket', GOOGLE_APPLICATION_CREDENTIALS: '/no/such/key.json' }, /^GOOGLE_APPLICATION_CREDENTIALS=\/no\/such\/key.json cannot be read/],
    [{ WALG_GS_PREFIX: 'gs://bucket', WALG_GS_ENDPOINT: 'storage' }, /^WALG_GS_ENDPOINT="storage" is invalid/],
    [{ WALG_AZ_PREFIX: 'azure://container' }, /^AZURE_STORAGE_ACCOUNT is not set/],
    [{ WALG_AZ_PREFIX: 'azure://container', AZURE_STORAGE_ACCOUNT: 'account' }, /^no Azure credentials/],
    [{ WALG_AZ_PREFIX: 'azure://container', AZURE_STORAGE_ACCOUNT: 'Bad_Account', AZURE_STORAGE_SAS_TOKEN: 'sig=x' }, /^AZURE_STORAGE_ACCOUNT="Bad_Account" is invalid/],
    [{ WALG_AZ_PREFIX: 'azure://container', AZURE_STORAGE_ACCOUNT: 'account', AZURE_STORAGE_ACCESS_KEY: 'a2V5', AZURE_STORAGE_SAS_TOKEN: 'sig=x' }, /both set: set one/],
    [{ WALG_AZ_PREFIX: 'azure://container', AZURE_STORAGE_CONNECTION_STRING: 'AccountKey=topsecret' }, /^AZURE_STORAGE_CONNECTION_STRING=\(hidden\) is invalid/],
  ];
  for (const [settings, message] of invalid) {
    test(`rejects ${JSON.stringify(settings)} up front`, async () => {
      const error = await openConfigured(new Config(settings)).then(() => undefined, (caught: unknown) => caught);
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n|topsecret/);
    });
  }
});
