/** dump-mark <name>: make a dump set permanent (kept by retention), or --impermanent to undo it. */
import { markDump } from '../archive/dumps.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name]: string[], options: { impermanent?: boolean }): Promise<number> {
  const storage = await openStorage(storageSpecFrom(config));
  const permanent = !options.impermanent;
  await markDump(storage, name!, permanent);
  process.stdout.write(`${name} is ${permanent ? 'permanent' : 'no longer permanent'}\n`);
  return ExitCode.ok;
}
