/**
 * Which storage to open, read from a configuration without opening it (no
 * SDK is loaded): the main storage from walship's own configuration today,
 * and a copy's from its own configuration file tomorrow.
 */
import type { Config } from '../config/config.ts';
import { type EncryptionKey, readEncryptionKey } from '../config/encryption.ts';
import { ConfigError } from '../errors.ts';

const BACKEND_OF_SETTING = {
  WALG_FILE_PREFIX: 'file',
  WALG_S3_PREFIX: 's3',
  WALG_GS_PREFIX: 'gcs',
  WALG_AZ_PREFIX: 'azure',
} as const;

export type StoragePrefixSetting = keyof typeof BACKEND_OF_SETTING;
export type StorageBackend = (typeof BACKEND_OF_SETTING)[StoragePrefixSetting];

const STORAGE_SETTINGS = Object.keys(BACKEND_OF_SETTING) as StoragePrefixSetting[];

/** Settings that, besides the prefix, say which store a prefix lives in. */
const STORE_SETTINGS = ['AWS_ENDPOINT', 'WALG_GS_ENDPOINT', 'WALG_AZ_ENDPOINT', 'AZURE_STORAGE_ACCOUNT', 'AZURE_ENDPOINT_SUFFIX'];

export interface StorageSpec {
  backend: StorageBackend;
  /** The setting that names the prefix (WALG_FILE_PREFIX, WALG_S3_PREFIX, ...), for advice to pick another prefix. */
  prefixSetting: StoragePrefixSetting;
  /**
   * Names the archive: the prefix and the store it lives in, never
   * credentials. Records kept about uploads are trusted only for the same one.
   */
  identity: string;
  /** Where the backend reads its settings: the prefix, endpoint, credentials, retries. */
  settings: Config;
  /** The archive's client-side encryption key (WALG_LIBSODIUM_KEY...), read and checked with the rest. */
  encryption: EncryptionKey | undefined;
}

/** The one storage `config` names; a ConfigError when it names none, or more than one. */
export function storageSpecFrom(config: Config): StorageSpec {
  const configured = STORAGE_SETTINGS.filter((name) => config.get(name) !== undefined);
  if (configured.length === 0) {
    throw new ConfigError(`no storage configured: set ${STORAGE_SETTINGS.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`);
  }
  if (configured.length > 1) {
    throw new ConfigError(`more than one storage configured (${configured.join(', ')}): set exactly one`);
  }
  const prefixSetting = configured[0]!;
  return {
    backend: BACKEND_OF_SETTING[prefixSetting],
    prefixSetting,
    identity: [prefixSetting, ...STORE_SETTINGS].map((name) => `${name}=${config.get(name) ?? ''}`).join(' '),
    settings: config,
    encryption: readEncryptionKey(config),
  };
}
