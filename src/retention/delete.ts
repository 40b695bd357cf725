/**
 * What `delete` does: one catalog of the archive, a plan, and with
 * `confirm` the plan carried out. Without it nothing is deleted: the plan is
 * the dry run's answer.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { Progress } from '../progress/progress.ts';
import type { Storage } from '../storage/storage.ts';
import { type Deleted, executePlan } from './execute.ts';
import { planBackups, planFolders, planWal, type RetentionPlan, type RetentionRequest } from './plan.ts';

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

export async function deleteBackups(storage: Storage, request: RetentionRequest, options: DeleteOptions): Promise<DeleteOutcome> {
  const { selection } = request;
  const withWal = selection.verb !== 'target' && !(selection.verb === 'garbage' && selection.scope === 'backups');
  const catalog = await ArchiveCatalog.load(storage, { wal: withWal, records: true });
  const plan = planRetention(catalog, storage.location, request, options);
  if (!options.confirm) return { plan };

  const planned = plan.folders.filter((folder) => folder.action === 'delete').reduce((sum, folder) => sum + folder.bytes, 0) +
    plan.backups.filter((decision) => decision.action === 'delete').reduce((sum, decision) => sum + decision.backup.CompressedSize, 0) +
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

/** What `request` would delete now from what `catalog` holds. */
export function planRetention(catalog: ArchiveCatalog, location: string, request: RetentionRequest, options: Pick<DeleteOptions, 'now' | 'timeZone'>): RetentionPlan {
  const context = { now: options.now, timeZone: options.timeZone };
  const backups = catalog.backups();
  const decisions = planBackups(backups, request.selection, context);
  const begun = catalog.deletionsBegun();
  const incomplete = catalog.incompleteBackups();
  const folders = planFolders(incomplete, new Set(begun), request, options.now);
  const complete = new Set(backups.map((backup) => backup.BackupName));
  const withFolder = new Set(incomplete.map((folder) => folder.name));
  // Backups whose sentinel stays: those kept, and those the catalog cannot read (never deleted).
  const staying = [...decisions.filter((decision) => decision.action === 'keep').map((decision) => decision.backup.BackupName), ...catalog.unreadableSentinels().map(({ backup }) => backup)];
  const notes = catalog.unreadableSentinels().map(({ backup, reason }) => `${backup} is kept: its sentinel cannot be read (${reason})`);
  return {
    selection: request.selection,
    location,
    segmentSize: catalog.segmentSize,
    backups: decisions,
    folders,
    finishedDeletionRecords: begun.filter((name) => !complete.has(name) && !withFolder.has(name)),
    staleDeletionRecords: begun.filter((name) => complete.has(name)),
    drillReports: catalog.drillReportsToPrune(staying, new Date(options.now)),
    incompleteLeftAlone: incomplete.length - folders.length,
    wal: planWal(catalog, decisions, request, context),
    notes,
  };
}
