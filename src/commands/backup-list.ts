/** backup-list: the complete backups in storage, newest last. */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { backupJson, backupRow } from '../backup/list.ts';
import { ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { plainTable, prettyTable } from '../util/table.ts';
import type { CommandContext } from './command.ts';

interface ListOptions {
  detail?: boolean;
  json?: boolean;
  pretty?: boolean;
}

export async function run({ config }: CommandContext, _args: string[], options: ListOptions): Promise<number> {
  const storage = await openStorage(storageSpecFrom(config));
  const backups = (await ArchiveCatalog.load(storage, { wal: false })).backups();
  if (options.json) {
    process.stdout.write(`${JSON.stringify(backups.map(backupJson), null, options.pretty ? 2 : undefined)}\n`);
    return ExitCode.ok;
  }
  if (backups.length === 0) {
    process.stderr.write(`No backups found in ${storage.location}\n`);
    return ExitCode.ok;
  }
  const rows = backups.map((sentinel) => backupRow(sentinel, options.detail ?? false));
  process.stdout.write(`${options.pretty ? prettyTable(rows) : plainTable(rows)}\n`);
  return ExitCode.ok;
}
