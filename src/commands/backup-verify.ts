/** backup-verify [NAME|LATEST] [--all]: a check (exit 0 to 3) that a backup would restore, without restoring it. */
import { reportCheck } from '../checks/verdict.ts';
import { readDownloadConcurrency } from '../config/settings.ts';
import { ConfigError } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { type BackupChoice, verifyBackups } from '../verify/backup-verify.ts';
import type { CommandContext } from './command.ts';

function readChoice(name: string | undefined, all: boolean): BackupChoice {
  if (all && name !== undefined) throw new ConfigError(`backup-verify ${name} --all: name one backup or pass --all, not both`);
  if (all) return 'ALL';
  return name === undefined || name === 'LATEST' ? 'LATEST' : { name };
}

export async function run({ config }: CommandContext, [name]: string[], options: { all?: boolean; json?: boolean }): Promise<number> {
  const backups = readChoice(name, options.all ?? false);
  const downloadConcurrency = readDownloadConcurrency(config);
  const storage = await openStorage(storageSpecFrom(config));
  return reportCheck(await verifyBackups({ storage, backups, downloadConcurrency }), options);
}
