/**
 * Chooses the storage backend from the configuration. Each backend module is
 * imported only when it is the one configured, so a command never pays for
 * the SDKs of backends it does not use.
 */
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import type { Storage } from './storage.ts';

export const STORAGE_SETTINGS = ['WALG_FILE_PREFIX', 'WALG_S3_PREFIX', 'WALG_GS_PREFIX', 'WALG_AZ_PREFIX'] as const;

export async function openStorage(config: Config): Promise<Storage> {
  const configured = STORAGE_SETTINGS.filter((name) => config.get(name) !== undefined);
  if (configured.length === 0) {
    throw new ConfigError(`no storage configured: set ${STORAGE_SETTINGS.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`);
  }
  if (configured.length > 1) {
    throw new ConfigError(`more than one storage configured (${configured.join(', ')}): set exactly one`);
  }
  switch (configured[0]!) {
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
