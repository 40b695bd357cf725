/** dump-list: the complete dump sets in storage, newest last. */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { lastDumpDrills } from '../archive/drills.ts';
import { dumpJson, dumpRows, type LastDumpDrill } from '../dump/list.ts';
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
  const sets = (await ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true })).dumpSets();
  // One listing of walship/drills/, and a read per drilled set: only with --detail or --json.
  const drills = options.json || options.detail ? await lastDumpDrills(storage) : new Map<string, LastDumpDrill>();
  if (options.json) {
    process.stdout.write(`${JSON.stringify(sets.map((sentinel) => dumpJson(sentinel, drills.get(sentinel.DumpName))), null, options.pretty ? 2 : undefined)}\n`);
    return ExitCode.ok;
  }
  if (sets.length === 0) {
    process.stderr.write(`No dump sets found in ${storage.location}\n`);
    return ExitCode.ok;
  }
  const rows = sets.flatMap((sentinel) => dumpRows(sentinel, options.detail ?? false, drills.get(sentinel.DumpName)));
  process.stdout.write(`${options.pretty ? prettyTable(rows) : plainTable(rows)}\n`);
  return ExitCode.ok;
}
