/** Opening storage in tests the way the commands do. */
import type { Config } from '../../src/config/config.ts';
import { EncryptionKey } from '../../src/config/encryption.ts';
import { openStorage } from '../../src/storage/open.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import type { Storage } from '../../src/storage/storage.ts';

/** Opens the storage a configuration names; a bad configuration rejects, as a command would fail. */
export async function openConfigured(config: Config): Promise<Storage> {
  return openStorage(storageSpecFrom(config));
}

/** `storage` as openStorage hands it over with a key configured (the key `keyText`, padded to 32 bytes). */
export function withKey(storage: Storage, keyText: string): Storage {
  const keyed = Object.create(storage) as Storage;
  Object.defineProperty(keyed, 'encryption', { value: new EncryptionKey(Buffer.from(keyText.padEnd(32, '*')), 'WALG_LIBSODIUM_KEY'), enumerable: false });
  return keyed;
}
