/**
 * The plan as `delete` prints it: every backup with keep or delete and its
 * reasons, leftover folders, the WAL to delete per timeline and what is kept,
 * then what was deleted; and the same as JSON for scripts.
 */
import { DRILL_REPORT_RETENTION_DAYS } from '../archive/drills.ts';
import { segmentName } from '../postgres/wal-name.ts';
import { formatBytes, formatDuration } from '../progress/progress.ts';
import { PERIODS } from './gfs.ts';
import type { DeleteOutcome } from './delete.ts';
import type { FolderDecision, Selection, WalDeletion, WalPlan } from './plan.ts';

const formats = new Map<string, Intl.DateTimeFormat>();

/** 2026-11-30 02:15:03 +01:00, in the plan's time zone. */
export function localTime(time: number, timeZone: string): string {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'longOffset',
    });
    formats.set(timeZone, format);
  }
  const part = Object.fromEntries(format.formatToParts(time).map(({ type, value }) => [type, value]));
  const offset = part.timeZoneName === 'GMT' ? '+00:00' : part.timeZoneName!.replace('GMT', '');
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${offset}`;
}

/** The verb as it was given: "retain", "garbage ARCHIVES", "everything FORCE", ... */
export function describeSelection(selection: Selection): string {
  switch (selection.verb) {
    case 'retain': {
      const { rules, after } = selection;
      const described = [
        rules.last !== undefined && `newest ${rules.last}`,
        ...PERIODS.map((period) => rules[period] !== undefined && `${period} ${rules[period]}`),
        rules.within && `within ${rules.within.text}`,
        after && `from ${after.kind === 'set' ? after.name : after.text} on`,
      ].filter(Boolean);
      return `retain (${described.join(', ')})`;
    }
    case 'before':
      return `before ${selection.boundary.kind === 'set' ? selection.boundary.name : selection.boundary.text}`;
    case 'everything':
      return selection.force ? 'everything FORCE' : 'everything';
    case 'target':
      return `target ${selection.name}`;
    case 'garbage':
      return selection.scope === 'all' ? 'garbage' : `garbage ${selection.scope.toUpperCase()}`;
  }
}

function table(rows: string[][]): string[] {
  const widths = rows.reduce<number[]>((max, row) => row.map((cell, index) => Math.max(max[index] ?? 0, cell.length)), []);
  return rows.map((row) => `  ${row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!))).join('  ')}`.trimEnd());
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;

/** keep, delete, leave: one width, so every table of the plan lines up. */
const action = (name: string) => name.padEnd('delete'.length);

const approximately = (deletion: Pick<WalDeletion, 'bytes' | 'bytesEstimated'>) => `${deletion.bytesEstimated ? '~' : ''}${formatBytes(deletion.bytes)}`;

function walLines(wal: WalPlan, segmentSize: number): string[] {
  const name = (timeline: number, segment: bigint) => segmentName(timeline, segment, segmentSize);
  if (wal.keptBecause) return [`  keep    all WAL: ${wal.keptBecause}`];
  const lines = table(wal.deletions.map((deletion) => [
    action('delete'),
    `timeline ${deletion.timeline}`,
    `${name(deletion.timeline, deletion.first)} .. ${name(deletion.timeline, deletion.last)}`,
    `${deletion.segments} segment${deletion.segments === 1 ? '' : 's'}`,
    approximately(deletion),
  ]));
  if (wal.otherFiles > 0) lines.push(`  delete  ${wal.otherFiles} ${wal.everything ? 'history, .partial and .backup' : '.partial and .backup'} file${wal.otherFiles === 1 ? '' : 's'}`);
  if (wal.everything) return lines.length > 0 ? lines : ['  (no WAL stored)'];
  if (wal.deletions.length === 0) lines.push('  delete  nothing: no WAL is older than what the kept backups need');
  if (wal.keptFrom) lines.push(`  keep    every segment from ${wal.keptFrom.segment} on (the start of ${wal.keptFrom.backup}: point-in-time recovery from every backup since), and timeline history files`);
  for (const range of wal.protected) {
    lines.push(`  keep    ${name(range.timeline, range.first)} .. ${name(range.timeline, range.last)}: the WAL ${range.backup} needs to become consistent`);
  }
  return lines;
}

function folderLines(title: string, folders: readonly FolderDecision[], timeZone: string): string[] {
  if (folders.length === 0) return [];
  return ['', title, ...table(folders.map((folder) => [
    action(folder.action),
    folder.name,
    `${plural(folder.objects, 'object')}, ${formatBytes(folder.bytes)}, newest ${localTime(folder.newest.getTime(), timeZone)}`,
    folder.reason,
  ]))];
}

const deletedBytes = (folders: readonly FolderDecision[]) => folders.filter((folder) => folder.action === 'delete').reduce((sum, folder) => sum + folder.bytes, 0);
const deletedCount = (decisions: readonly { action: string }[]) => decisions.filter((decision) => decision.action === 'delete').length;

/** The plan, and with --confirm what was deleted, as lines for a person. */
export function planText(outcome: DeleteOutcome, timeZone: string): string {
  const { plan } = outcome;
  const lines = [`walship delete ${describeSelection(plan.selection)}${plan.dumps ? ' --dumps' : ''} in ${plan.location}${outcome.deleted ? '' : ': dry run, nothing is deleted'}`, ''];
  lines.push(...(plan.dumps ? dumpPlanLines(outcome, timeZone) : backupPlanLines(outcome, timeZone)));
  if (!outcome.deleted) lines.push('Dry run: nothing was deleted. Run it again with --confirm to delete.');
  return `${lines.join('\n')}\n`;
}

function backupPlanLines(outcome: DeleteOutcome, timeZone: string): string[] {
  const { plan, deleted } = outcome;
  const lines = [plan.backups.length === 0 ? 'Backups: none complete.' : 'Backups, oldest first by finish time:'];
  lines.push(...table(plan.backups.map((decision) => [
    action(decision.action),
    decision.backup.BackupName,
    localTime(decision.finishTime, timeZone),
    formatBytes(decision.backup.CompressedSize),
    `${decision.reasons.join(', ')}${decision.toItsEndOnly ? `; restorable to its end only (${decision.toItsEndOnly})` : ''}`,
  ])));
  lines.push(...folderLines('Backup folders without a sentinel:', plan.folders, timeZone));
  if (plan.incompleteLeftAlone > 0) {
    lines.push('', `${plan.incompleteLeftAlone} backup folder${plan.incompleteLeftAlone === 1 ? '' : 's'} without a sentinel left alone: delete garbage removes incomplete backups.`);
  }
  lines.push(...folderLines('Dump set folders without a sentinel:', plan.dumpFolders, timeZone));
  lines.push('', 'WAL:', ...walLines(plan.wal, plan.segmentSize));
  if (plan.drillReports.length > 0) {
    lines.push('', `Drill reports: delete ${plural(plan.drillReports.length, 'report')} of backups deleted, drilled more than ${DRILL_REPORT_RETENTION_DAYS} days ago (the newest report always stays).`);
  }
  for (const note of plan.notes) lines.push('', `Note: ${note}`);

  const removedBackups = plan.backups.filter((decision) => decision.action === 'delete');
  const removedFolders = deletedCount(plan.folders);
  const removedDumpFolders = deletedCount(plan.dumpFolders);
  const walSegments = plan.wal.deletions.reduce((sum, deletion) => sum + deletion.segments, 0);
  const bytes = removedBackups.reduce((sum, decision) => sum + decision.backup.CompressedSize, 0) + deletedBytes(plan.folders) + deletedBytes(plan.dumpFolders);
  const walBytes = plan.wal.deletions.reduce((sum, deletion) => sum + deletion.bytes, 0);
  const estimated = plan.wal.deletions.some((deletion) => deletion.bytesEstimated);
  lines.push(
    '',
    `Plan: delete ${removedBackups.length} of ${plan.backups.length} backups, ${removedFolders} folder${removedFolders === 1 ? '' : 's'} without a sentinel, ` +
      `${removedDumpFolders > 0 ? `${plural(removedDumpFolders, 'dump set folder')} without a sentinel, ` : ''}` +
      `${walSegments} WAL segment${walSegments === 1 ? '' : 's'}${plan.wal.otherFiles ? ` and ${plan.wal.otherFiles} other WAL file${plan.wal.otherFiles === 1 ? '' : 's'}` : ''}` +
      `${plan.drillReports.length > 0 ? `, ${plural(plan.drillReports.length, 'drill report')}` : ''}: ` +
      `${approximately({ bytes: bytes + walBytes, bytesEstimated: estimated })}.`,
  );
  if (deleted) {
    lines.push(
      `Deleted ${deleted.backups} backup${deleted.backups === 1 ? '' : 's'}, ${deleted.folders} backup folder${deleted.folders === 1 ? '' : 's'}` +
        `${deleted.dumpFolders > 0 ? `, ${plural(deleted.dumpFolders, 'dump set folder')}` : ''} and ${deleted.walFiles} WAL file${deleted.walFiles === 1 ? '' : 's'}` +
        `${deleted.drillReports > 0 ? ` (and ${plural(deleted.drillReports, 'drill report')})` : ''}: ` +
        `${plural(deleted.objects, 'object')}, ${formatBytes(deleted.bytes)} freed in ${formatDuration(deleted.ms)}.`,
    );
  }
  return lines;
}

function dumpPlanLines(outcome: DeleteOutcome, timeZone: string): string[] {
  const { plan, deleted } = outcome;
  const lines = [plan.dumpSets.length === 0 ? 'Dump sets: none complete.' : 'Dump sets, oldest first by finish time:'];
  lines.push(...table(plan.dumpSets.map((decision) => [
    action(decision.action),
    decision.dump.DumpName,
    localTime(decision.finishTime, timeZone),
    formatBytes(decision.dump.CompressedSize),
    decision.reasons.join(', '),
  ])));
  lines.push(...folderLines('Dump set folders without a sentinel:', plan.dumpFolders, timeZone));
  if (plan.incompleteLeftAlone > 0) {
    lines.push('', `${plan.incompleteLeftAlone} dump set folder${plan.incompleteLeftAlone === 1 ? '' : 's'} without a sentinel left alone: delete garbage --dumps removes incomplete dump sets.`);
  }
  lines.push('', 'Backups and WAL: untouched (delete --dumps deletes dump sets only).');
  if (plan.drillReports.length > 0) {
    lines.push('', `Drill reports: delete ${plural(plan.drillReports.length, 'report')} of dump sets deleted, drilled more than ${DRILL_REPORT_RETENTION_DAYS} days ago (the newest report always stays).`);
  }
  const removed = plan.dumpSets.filter((decision) => decision.action === 'delete');
  const removedFolders = deletedCount(plan.dumpFolders);
  const bytes = removed.reduce((sum, decision) => sum + decision.dump.CompressedSize, 0) + deletedBytes(plan.dumpFolders);
  lines.push('', `Plan: delete ${removed.length} of ${plan.dumpSets.length} dump sets, ${removedFolders} folder${removedFolders === 1 ? '' : 's'} without a sentinel: ${formatBytes(bytes)}.`);
  if (deleted) {
    lines.push(
      `Deleted ${plural(deleted.dumpSets, 'dump set')} and ${plural(deleted.dumpFolders, 'dump set folder')}` +
        `${deleted.drillReports > 0 ? ` (and ${plural(deleted.drillReports, 'drill report')})` : ''}: ` +
        `${plural(deleted.objects, 'object')}, ${formatBytes(deleted.bytes)} freed in ${formatDuration(deleted.ms)}.`,
    );
  }
  return lines;
}

/** The same plan for scripts: exact numbers, names and times in UTC. */
export function planJson(outcome: DeleteOutcome): Record<string, unknown> {
  const { plan, deleted } = outcome;
  const { wal } = plan;
  const name = (timeline: number, segment: bigint) => segmentName(timeline, segment, plan.segmentSize);
  return {
    command: `delete ${describeSelection(plan.selection)}${plan.dumps ? ' --dumps' : ''}`,
    location: plan.location,
    confirmed: deleted !== undefined,
    backups: plan.backups.map((decision) => ({
      backup_name: decision.backup.BackupName,
      finish_time: decision.backup.FinishTime,
      action: decision.action,
      reasons: decision.reasons,
      is_permanent: decision.backup.IsPermanent,
      compressed_size: decision.backup.CompressedSize,
      restorable_to_its_end_only: decision.toItsEndOnly ?? null,
    })),
    folders_without_sentinel: plan.folders.map((folder) => ({
      backup_name: folder.name,
      action: folder.action,
      reason: folder.reason,
      objects: folder.objects,
      bytes: folder.bytes,
      newest: folder.newest.toISOString(),
    })),
    dump_sets: plan.dumpSets.map((decision) => ({
      dump_name: decision.dump.DumpName,
      finish_time: decision.dump.FinishTime,
      action: decision.action,
      reasons: decision.reasons,
      is_permanent: decision.dump.IsPermanent,
      compressed_size: decision.dump.CompressedSize,
    })),
    dump_folders_without_sentinel: plan.dumpFolders.map((folder) => ({
      dump_name: folder.name,
      action: folder.action,
      reason: folder.reason,
      objects: folder.objects,
      bytes: folder.bytes,
      newest: folder.newest.toISOString(),
    })),
    incomplete_left_alone: plan.incompleteLeftAlone,
    wal: {
      kept_because: wal.keptBecause ?? null,
      everything: wal.everything,
      kept_from: wal.keptFrom ? { segment: wal.keptFrom.segment, backup_name: wal.keptFrom.backup } : null,
      kept_for_consistency: wal.protected.map((range) => ({
        timeline: range.timeline,
        first: name(range.timeline, range.first),
        last: name(range.timeline, range.last),
        backup_name: range.backup,
      })),
      delete: wal.deletions.map((deletion) => ({
        timeline: deletion.timeline,
        first: name(deletion.timeline, deletion.first),
        last: name(deletion.timeline, deletion.last),
        segments: deletion.segments,
        bytes: deletion.bytes,
        bytes_estimated: deletion.bytesEstimated,
      })),
      other_files: wal.otherFiles,
    },
    drill_reports_delete: plan.drillReports.map((report) => ({ key: report.key, backup_name: report.backup, time: report.time.toISOString() })),
    notes: plan.notes,
    deleted: deleted
      ? { backups: deleted.backups, folders: deleted.folders, dump_sets: deleted.dumpSets, dump_folders: deleted.dumpFolders, wal_files: deleted.walFiles, drill_reports: deleted.drillReports, objects: deleted.objects, bytes: deleted.bytes, seconds: deleted.ms / 1000 }
      : null,
  };
}
