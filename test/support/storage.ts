/** Opening storage in tests the way the commands do. */
import type { Config } from '../../src/config/config.ts';
import { openStorage } from '../../src/storage/open.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import type { Storage } from '../../src/storage/storage.ts';

/** Opens the storage a configuration names; a bad configuration rejects, as a command would fail. */
export async function openConfigured(config: Config): Promise<Storage> {
  return openStorage(storageSpecFrom(config));
}
