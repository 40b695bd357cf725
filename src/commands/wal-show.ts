/** wal-show: the archive's timelines, their switch points, segments, gaps and backups. */
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { showWal } from '../verify/wal-show.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, _args: string[], options: { json?: boolean }): Promise<number> {
  const shown = await showWal(await openStorage(storageSpecFrom(config)));
  process.stdout.write(`${options.json ? JSON.stringify(shown.json, null, 2) : shown.text}\n`);
  return ExitCode.ok;
}
