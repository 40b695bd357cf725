/** backup-mark <name>: make a backup permanent (kept by retention), or --impermanent to undo it. */
import { markBackup } from '../archive/backups.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name]: string[], options: { impermanent?: boolean }): Promise<number> {
  const storage = await openStorage(storageSpecFrom(config));
  const permanent = !options.impermanent;
  await markBackup(storage, name!, permanent);
  process.stdout.write(`${name} is ${permanent ? 'permanent' : 'no longer permanent'}\n`);
  return ExitCode.ok;
}
