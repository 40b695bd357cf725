/**
 * wal-fetch <name> <destination>: restore_command.
 * 0 fetched, 74 not in the archive, anything else is an error: above 125 in
 * targeted recovery (PostgreSQL stops rather than promote early), 1 on a
 * standby (it retries later).
 */
import { readCompression } from '../config/settings.ts';
import { ExitCode, NotFoundError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { recoveryMode } from '../postgres/recovery.ts';
import { requireWalFileName } from '../postgres/wal-name.ts';
import { openStorage } from '../storage/open.ts';
import { fetchWalFile } from '../wal/fetch.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name, destination]: string[]): Promise<number> {
  const wal = requireWalFileName(name!);
  const compression = readCompression(config);
  const storage = await openStorage(config);
  try {
    await fetchWalFile({ storage, compression }, name!, destination!);
    return ExitCode.ok;
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    // Asking for absent files is part of recovery (history files, the end of the archive).
    if (wal.kind === 'history') log.debug(error.message);
    else log.info(error.message);
    return ExitCode.notFound;
  }
}

export function exitCodeFor(): number {
  return recoveryMode() === 'standby' ? ExitCode.failure : ExitCode.fatalRecoveryError;
}
