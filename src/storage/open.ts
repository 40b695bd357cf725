/**
 * Chooses the storage backend from the configuration. Each backend module is
 * imported only when it is the one configured, so a command never pays for
 * the SDKs of backends it does not use.
 */
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import type { Storage } from './storage.ts';

export const STORAGE_SETTINGS = ['WALG_FILE_PREFIX', 'WALG_S3_PREFIX', 'WALG_GS_PREFIX', 'WALG_AZ_PREFIX'] as const;

/** Settings that, besides the prefix, say which store a prefix lives in. */
const STORE_SETTINGS = ['AWS_ENDPOINT', 'WALG_GS_ENDPOINT', 'WALG_AZ_ENDPOINT', 'AZURE_STORAGE_ACCOUNT', 'AZURE_ENDPOINT_SUFFIX'];

/** The one storage prefix setting that is set (WALG_FILE_PREFIX, WALG_S3_PREFIX, ...). */
export function storagePrefixSetting(config: Config): (typeof STORAGE_SETTINGS)[number] {
  const configured = STORAGE_SETTINGS.filter((name) => config.get(name) !== undefined);
  if (configured.length === 0) {
    throw new ConfigError(`no storage configured: set ${STORAGE_SETTINGS.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`);
  }
  if (configured.length > 1) {
    throw new ConfigError(`more than one storage configured (${configured.join(', ')}): set exactly one`);
  }
  return configured[0]!;
}

/**
 * Names the configured archive without opening it (no SDK is loaded): records
 * kept about uploads are only trusted for the same archive.
 */
export function storageIdentity(config: Config): string {
  const setting = storagePrefixSetting(config);
  return [setting, ...STORE_SETTINGS].map((name) => `${name}=${config.get(name) ?? ''}`).join(' ');
}

export async function openStorage(config: Config): Promise<Storage> {
  switch (storagePrefixSetting(config)) {
    case 'WALG_FILE_PREFIX': {
      const { FileStorage } = await import('./file.ts');
      return FileStorage.open(config.absolutePath('WALG_FILE_PREFIX')!);
    }
    case 'WALG_S3_PREFIX': {
      const { S3Storage } = await import('./s3.ts');
      return S3Storage.open(config);
    }
    case 'WALG_GS_PREFIX': {
      const { GcsStorage } = await import('./gcs.ts');
      return GcsStorage.open(config);
    }
    case 'WALG_AZ_PREFIX': {
      const { AzureStorage } = await import('./azure.ts');
      return AzureStorage.open(config);
    }
  }
}
