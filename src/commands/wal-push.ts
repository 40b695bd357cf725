/** wal-push <path>: archive_command. Exit 0 only once the file is durable in storage. */
import { readCompression, readPreventWalOverwrite } from '../config/settings.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { pushWalFile } from '../wal/push.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [path]: string[]): Promise<number> {
  const compression = readCompression(config);
  const preventOverwrite = readPreventWalOverwrite(config);
  const storage = await openStorage(config);
  await pushWalFile({ storage, compression, preventOverwrite }, path!);
  return ExitCode.ok;
}

/** Every failure is an ordinary one: a status above 125 would kill PostgreSQL's archiver. */
export function exitCodeFor(): number {
  return ExitCode.failure;
}
