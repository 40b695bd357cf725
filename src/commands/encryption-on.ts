/** encryption-on: record that the archive's new objects are encrypted with the configured key. */
import { switchOnEncryption } from '../archive/identity.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

const OUTCOMES = {
  switched: 'is encrypted from now on',
  already: 'was already recorded as encrypted',
  unrecorded: 'has no walship/archive.json yet: the first wal-push or backup-push records it as encrypted',
};

export async function run({ config }: CommandContext, _args: string[], options: { json?: boolean }): Promise<number> {
  const spec = storageSpecFrom(config);
  const storage = await openStorage(spec);
  const { outcome, keyId } = await switchOnEncryption(storage, spec.prefixSetting);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ archive: storage.location, outcome, method: 'libsodium', keyId })}\n`);
  } else {
    process.stdout.write(`the archive in ${storage.location} ${OUTCOMES[outcome]} (libsodium, key id ${keyId})\n`);
  }
  return ExitCode.ok;
}
