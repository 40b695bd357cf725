/** backup-list: the complete backups in storage, newest last. */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { lastDrills } from '../archive/drills.ts';
import { backupJson, backupRow, type LastDrill } from '../backup/list.ts';
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
  // The plain list stays WAL-G's: drills only with --detail or --json.
  const drills = options.json || options.detail ? await lastDrills(storage) : new Map<string, LastDrill>();
  if (options.json) {
    const entries = backups.map((sentinel) => backupJson(sentinel, drills.get(sentinel.BackupName)));
    process.stdout.write(`${JSON.stringify(entries, null, options.pretty ? 2 : undefined)}\n`);
    return ExitCode.ok;
  }
  if (backups.length === 0) {
    process.stderr.write(`No backups found in ${storage.location}\n`);
    return ExitCode.ok;
  }
  const rows = backups.map((sentinel) => backupRow(sentinel, options.detail ?? false, drills.get(sentinel.BackupName)));
  process.stdout.write(`${options.pretty ? prettyTable(rows) : plainTable(rows)}\n`);
  return ExitCode.ok;
}
