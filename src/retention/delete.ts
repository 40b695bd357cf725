/**
 * What `delete` does: one catalog of the archive, a plan, and with
 * `confirm` the plan carried out. Without it nothing is deleted: the plan is
 * the dry run's answer.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { Progress } from '../progress/progress.ts';
import type { Storage } from '../storage/storage.ts';
import { type Deleted, executePlan } from './execute.ts';
import { DUMP_SETS, planBackups, planDumps, planFolders, planWal, type RetentionPlan, type RetentionRequest, type WalPlan } from './plan.ts';

export interface DeleteOutcome {
  plan: RetentionPlan;
  /** With confirm: what was deleted, and in how long. */
  deleted?: Deleted & { ms: number };
}

export interface DeleteOptions {
  confirm: boolean;
  now: number;
  /** The calendar of the GFS rules (the machine's: TZ). */
  timeZone: string;
}

type PlanTime = Pick<DeleteOptions, 'now' | 'timeZone'>;

export async function deleteBackups(storage: Storage, request: RetentionRequest, options: DeleteOptions): Promise<DeleteOutcome> {
  const { selection } = request;
  const dumps = request.dumps ?? false;
  const withWal = !dumps && selection.verb !== 'target' && !(selection.verb === 'garbage' && selection.scope === 'backups');
  // garbage takes the dump sets' leftovers too; everything says how many dump sets it leaves.
  const withDumps = dumps || (selection.verb === 'garbage' && selection.scope === 'all') || selection.verb === 'everything';
  const catalog = await ArchiveCatalog.load(storage, { wal: withWal, backups: !dumps, dumps: withDumps, records: true });
  const plan = planRetention(catalog, storage.location, request, options);
  if (!options.confirm) return { plan };

  const planned = [...plan.folders, ...plan.dumpFolders].filter((folder) => folder.action === 'delete').reduce((sum, folder) => sum + folder.bytes, 0) +
    plan.backups.filter((decision) => decision.action === 'delete').reduce((sum, decision) => sum + decision.backup.CompressedSize, 0) +
    plan.dumpSets.filter((decision) => decision.action === 'delete').reduce((sum, decision) => sum + decision.dump.CompressedSize, 0) +
    plan.wal.deletions.reduce((sum, deletion) => sum + deletion.bytes, 0);
  const progress = new Progress({ label: 'delete', total: planned, estimated: true });
  try {
    const deleted = await executePlan(storage, plan, request, {
      now: options.now,
      segmentSize: catalog.segmentSize,
      onDeleted: (_objects, bytes) => progress.advance(bytes),
    });
    return { plan, deleted: { ...deleted, ms: progress.elapsedMs } };
  } finally {
    progress.finish();
  }
}

/** What `request` would delete now from what `catalog` holds (status asks it too). */
export function planRetention(catalog: ArchiveCatalog, location: string, request: RetentionRequest, options: PlanTime): RetentionPlan {
  return request.dumps ? makeDumpPlan(catalog, location, request, options) : makePlan(catalog, location, request, options);
}

/** The deletion records of one kind: those whose set and folder are gone, and those whose set is still complete. */
function deletionRecords(begun: readonly string[], complete: ReadonlySet<string>, withFolder: ReadonlySet<string>) {
  return {
    finished: begun.filter((name) => !complete.has(name) && !withFolder.has(name)),
    stale: begun.filter((name) => complete.has(name)),
  };
}

function makePlan(catalog: ArchiveCatalog, location: string, request: RetentionRequest, options: PlanTime): RetentionPlan {
  const context = { now: options.now, timeZone: options.timeZone };
  const backups = catalog.backups();
  const decisions = planBackups(backups, request.selection, context);
  const begun = catalog.deletionsBegun();
  const incomplete = catalog.incompleteBackups();
  const folders = planFolders(incomplete, new Set(begun), request, options.now);
  const records = deletionRecords(begun, new Set(backups.map((backup) => backup.BackupName)), new Set(incomplete.map((folder) => folder.name)));
  // garbage removes the dump sets' old leftovers as well; only folders without a sentinel, never a dump set.
  const dumpFolders = request.selection.verb === 'garbage' && request.selection.scope === 'all'
    ? planFolders(catalog.incompleteDumps(), new Set(), request, options.now, DUMP_SETS)
    : [];
  // Backups whose sentinel stays: those kept, and those the catalog cannot read (never deleted).
  const staying = [...decisions.filter((decision) => decision.action === 'keep').map((decision) => decision.backup.BackupName), ...catalog.unreadableSentinels().map(({ backup }) => backup)];
  const notes = catalog.unreadableSentinels().map(({ backup, reason }) => `${backup} is kept: its sentinel cannot be read (${reason})`);
  const dumpSets = catalog.dumpSets().length;
  if (request.selection.verb === 'everything' && dumpSets > 0) {
    notes.push(`${dumpSets} dump set${dumpSets === 1 ? '' : 's'} stay${dumpSets === 1 ? 's' : ''}: delete everything --dumps removes dump sets`);
  }
  return {
    selection: request.selection,
    dumps: false,
    location,
    segmentSize: catalog.segmentSize,
    backups: decisions,
    folders,
    dumpSets: [],
    dumpFolders,
    finishedDeletionRecords: records.finished,
    staleDeletionRecords: records.stale,
    drillReports: catalog.drillReportsToPrune(staying, new Date(options.now)),
    incompleteLeftAlone: incomplete.length - folders.length,
    wal: planWal(catalog, decisions, request, context),
    notes,
  };
}

/** `delete --dumps`: the verb over dump sets and their folders without a sentinel; no backup, no WAL. */
function makeDumpPlan(catalog: ArchiveCatalog, location: string, request: RetentionRequest, options: PlanTime): RetentionPlan {
  const sets = catalog.dumpSets();
  const decisions = planDumps(sets, request.selection, { now: options.now, timeZone: options.timeZone });
  const begun = catalog.dumpDeletionsBegun();
  const incomplete = catalog.incompleteDumps();
  const dumpFolders = planFolders(incomplete, new Set(begun), request, options.now, DUMP_SETS);
  const records = deletionRecords(begun, new Set(sets.map((set) => set.DumpName)), new Set(incomplete.map((folder) => folder.name)));
  const wal: WalPlan = { keptBecause: 'delete --dumps never deletes WAL', everything: false, protected: [], deletions: [], otherFiles: 0 };
  // Dump sets whose sentinel stays: those kept, and those the catalog could not read (never deleted).
  const listed = new Set(sets.map((set) => set.DumpName));
  const staying = [...decisions.filter((decision) => decision.action === 'keep').map((decision) => decision.dump.DumpName), ...catalog.dumpSentinelNames().filter((name) => !listed.has(name))];
  return {
    selection: request.selection,
    dumps: true,
    location,
    segmentSize: catalog.segmentSize,
    backups: [],
    folders: [],
    dumpSets: decisions,
    dumpFolders,
    finishedDeletionRecords: records.finished,
    staleDeletionRecords: records.stale,
    drillReports: catalog.dumpDrillReportsToPrune(staying, new Date(options.now)),
    incompleteLeftAlone: incomplete.length - dumpFolders.length,
    wal,
    notes: [],
  };
}
