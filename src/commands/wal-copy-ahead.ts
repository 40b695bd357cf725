/**
 * wal-copy-ahead <records_dir>: the detached forwarder that wal-push starts
 * (internal). It relays the WAL files queued for the copies (the ones the
 * last wal-push was configured with) from the main storage to each copy, and
 * exits once nothing has waited for a while.
 */
import { readCopyBacklogLimit, storageConfigFile } from '../config/copies.ts';
import { readCompression, readUploadConcurrency } from '../config/settings.ts';
import { runForwarder } from '../copy/forward.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [recordsDirectory]: string[]): Promise<number> {
  await runForwarder({
    source: storageSpecFrom(config),
    method: readCompression(config).method,
    open: async (copy) => openStorage(storageSpecFrom(storageConfigFile(copy))),
    recordsDirectory: recordsDirectory!,
    uploadConcurrency: readUploadConcurrency(config),
    backlogLimit: readCopyBacklogLimit(config),
  });
  return ExitCode.ok;
}
