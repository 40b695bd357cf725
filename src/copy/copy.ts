/**
 * walship copy: bring one target storage up to date with a source.
 *
 *   1. both archives' identity: never mix two clusters' archives
 *   2. one listing of each side's basebackups_005/ (the archive catalog, sentinels read)
 *   3. one listing of each side's wal_005/, joined as they come (archive/difference.ts):
 *      each WAL file the target lacks is relayed as stored, checked on the way
 *   4. each complete backup the target lacks: its parts (checked against the
 *      SHA-256 its sentinel records) and other objects, metadata.json, and last
 *      the sentinel, so a half-copied backup is never listed at the target
 *   5. with prune: what the source no longer holds, of the kinds retention deletes
 *
 * An object at the target is never replaced: one under the same name with
 * another size is reported, and the copy exits 1. Objects are put
 * create-only and appear whole or not at all, so a copy killed at any point
 * leaves nothing half-written, and running it again copies only what is
 * still missing: a second run transfers nothing.
 */
import { isDeepStrictEqual } from 'node:util';
import { type BackupSentinel, deleteBackupObjects, validSentinel } from '../archive/backups.ts';
import { ArchiveCatalog } from '../archive/catalog.ts';
import { joinWal, type StoredWalObject, type WalGroup } from '../archive/difference.ts';
import { backupPrefix, metadataKey, partKey, sentinelKey } from '../archive/layout.ts';
import { IntegrityError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { segmentNumberOfName, type WalFileName } from '../postgres/wal-name.ts';
import { formatBytes, formatDuration, formatRate, Progress } from '../progress/progress.ts';
import { VerifyStage } from '../stages/checksum.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
import { expectedContent } from '../stages/object-metadata.ts';
import { relayStages } from '../stages/transfer.ts';
import type { ObjectInfo, Storage } from '../storage/storage.ts';
import { forEachConcurrently, InFlight } from '../util/concurrency.ts';
import { copyArchiveRecord, readRecords, requireSameCluster } from './identity.ts';
import { relay, type RelayOutcome } from './relay.ts';

/** What to copy: everything, the WAL alone, or one backup and the WAL from its start on. */
export type CopySelection = { kind: 'all' } | { kind: 'wal' } | { kind: 'backup'; name: string };

export interface CopySettings {
  source: Storage;
  target: Storage;
  selection: CopySelection;
  /** Only the WAL each copied backup needs to become consistent, from its start to its finish (WAL-G's --without-history). */
  withoutHistory: boolean;
  /** Delete at the target what the source no longer holds, of the kinds retention deletes. */
  prune: boolean;
  /** Say what would be copied and pruned; change nothing. */
  dryRun: boolean;
  /** WAL files in flight at once; backup parts, which are large, at most BACKUP_PARTS_IN_FLIGHT. */
  concurrency: number;
}

export interface CopyReport {
  source: string;
  target: string;
  dryRun: boolean;
  wal: { files: number; bytes: number };
  backups: { copied: string[]; objects: number; bytes: number; marked: string[] };
  pruned: { walFiles: number; backups: string[]; folders: string[] };
  /** What makes the copy fail, one line each: different content at the target, a source object that fails its check. */
  problems: string[];
  /** What prune left alone although the source lacks it, and why. */
  keptByPrune: string[];
  elapsedMs: number;
}

/** Each in flight holds a few 8 MiB parts of its upload: more would only cost memory. */
const BACKUP_PARTS_IN_FLIGHT = 4;
const DEFAULT_SEGMENT_SIZE = 16 << 20;

export async function copyArchive(settings: CopySettings): Promise<CopyReport> {
  const { source, target, selection, dryRun } = settings;
  const startedAt = Date.now();
  const report: CopyReport = {
    source: source.location,
    target: target.location,
    dryRun,
    wal: { files: 0, bytes: 0 },
    backups: { copied: [], objects: 0, bytes: 0, marked: [] },
    pruned: { walFiles: 0, backups: [], folders: [] },
    problems: [],
    keptByPrune: [],
    elapsedMs: 0,
  };
  const [sourceRecord, targetRecord] = await readRecords(source, target);
  const [sourceCatalog, targetCatalog] = await Promise.all([ArchiveCatalog.load(source, { wal: false }), ArchiveCatalog.load(target, { wal: false })]);
  const sourceSide = { storage: source, record: sourceRecord, origins: sourceCatalog.backupOrigins() };
  requireSameCluster(sourceSide, { storage: target, record: targetRecord, origins: targetCatalog.backupOrigins() });
  if (!dryRun) await copyArchiveRecord(sourceSide, { storage: target, record: targetRecord });

  const backups = new BackupSet(sourceCatalog, targetCatalog, source.location, sourceRecord?.walSegmentSize);
  const copied = backups.selected(selection);
  const progress = new Progress({ label: `copy to ${target.location}` });
  try {
    const pruning = settings.prune && selection.kind !== 'backup' ? backups.walPruning(report) : undefined;
    await copyWal(settings, backups.walFilter(selection, copied, settings.withoutHistory), pruning, report, progress);
    for (const name of copied) await copyBackup(settings, backups, name, report, progress);
    if (settings.prune && selection.kind === 'all') await pruneBackups(settings, backups, report);
  } finally {
    report.elapsedMs = Date.now() - startedAt;
    progress.finish(dryRun ? undefined : summaryLine(report));
  }
  return report;
}

export function summaryLine(report: CopyReport): string {
  const { wal, backups, pruned } = report;
  const bytes = wal.bytes + backups.bytes;
  const plural = (count: number, what: string) => `${count} ${what}${count === 1 ? '' : 's'}`;
  const parts = [
    `${report.dryRun ? 'would copy' : 'copied'} ${plural(wal.files, 'WAL file')} (${formatBytes(wal.bytes)}) and ${plural(backups.copied.length, 'backup')} (${formatBytes(backups.bytes)})`,
  ];
  if (backups.marked.length > 0) parts.push(`${report.dryRun ? 'would update' : 'updated'} the permanent mark of ${backups.marked.join(', ')}`);
  const prunedBackups = pruned.backups.length + pruned.folders.length;
  if (pruned.walFiles + prunedBackups > 0) parts.push(`${report.dryRun ? 'would prune' : 'pruned'} ${plural(pruned.walFiles, 'WAL file')} and ${plural(prunedBackups, 'backup')}`);
  const timing = report.dryRun ? '' : ` in ${formatDuration(report.elapsedMs)}, ${formatRate(bytes, report.elapsedMs)}`;
  const problems = report.problems.length > 0 ? `; ${plural(report.problems.length, 'problem')}` : '';
  return `copy ${report.source} -> ${report.target}: ${parts.join(', ')}${timing}${problems}`;
}

/** What the two catalogs say about backups, and what that means for the WAL. */
class BackupSet {
  readonly sourceDocuments: ReadonlyMap<string, unknown>;
  readonly targetDocuments: ReadonlyMap<string, unknown>;
  readonly source: ArchiveCatalog;
  readonly target: ArchiveCatalog;
  /** Walship's complete backups at the source, oldest first by finish time. */
  private readonly complete: readonly BackupSentinel[];
  private readonly segmentSize: number;
  private readonly sourceLocation: string;

  constructor(source: ArchiveCatalog, target: ArchiveCatalog, sourceLocation: string, recordedSegmentSize: number | undefined) {
    this.sourceLocation = sourceLocation;
    this.source = source;
    this.target = target;
    this.sourceDocuments = source.sentinelDocuments();
    this.targetDocuments = target.sentinelDocuments();
    this.complete = source.backups();
    this.segmentSize = recordedSegmentSize ?? this.complete.findLast((backup) => backup.WalSegmentSize)?.WalSegmentSize ?? DEFAULT_SEGMENT_SIZE;
  }

  /** The backups to copy, by name. */
  selected(selection: CopySelection): string[] {
    if (selection.kind === 'wal') return [];
    if (selection.kind === 'all') return [...this.sourceDocuments.keys()].sort();
    if (!this.sourceDocuments.has(selection.name)) {
      throw new NotFoundError(`backup ${selection.name} is not in ${this.sourceLocation} (or is incomplete there): backup-list shows the complete backups`);
    }
    return [selection.name];
  }

  /** Which WAL files to copy. History files always go: they are small and every recovery reads them. */
  walFilter(selection: CopySelection, copied: string[], withoutHistory: boolean): (object: StoredWalObject) => boolean {
    if (selection.kind !== 'backup' && !withoutHistory) return () => true;
    const ranges = copied.map((name) => this.ownRange(name));
    return ({ file }) => {
      if (file.kind === 'history') return true;
      const segment = this.segmentNumber(file.segment!);
      if (segment === undefined) return false;
      return ranges.some((range) => range !== undefined && segment >= range.first && (!withoutHistory || segment <= range.last));
    };
  }

  /**
   * Which WAL files the target holds and the source does not may go, as
   * retention deletes them: never a history file, a segment a backup of the
   * source needs to become consistent, or one from the start of the source's
   * newest backup on (point-in-time recovery from it needs them all). What the
   * source lacks beyond that was lost there, not deleted by retention: prune
   * keeps it and says so. Undefined when nothing tells what retention would delete.
   */
  walPruning(report: CopyReport): WalPruning | undefined {
    const unreadable = [...this.sourceDocuments.keys()].find((name) => !this.complete.some((backup) => backup.BackupName === name));
    if (this.complete.length === 0) {
      report.keptByPrune.push(`no WAL pruned: ${this.sourceLocation} holds no complete backup walship can read, so nothing tells which WAL retention would delete`);
      return undefined;
    }
    if (unreadable !== undefined) {
      report.keptByPrune.push(`no WAL pruned: backup ${unreadable} in ${this.sourceLocation} has a sentinel walship cannot read, so the WAL it needs is unknown`);
      return undefined;
    }
    const ranges = this.complete.map((backup) => this.ownRange(backup.BackupName)!);
    const newestStart = ranges.reduce((newest, range) => (range.first > newest ? range.first : newest), 0n);
    return new WalPruning((file) => {
      if (file.kind === 'history') return false;
      const segment = this.segmentNumber(file.segment!);
      return segment !== undefined && segment < newestStart && !ranges.some((range) => segment >= range.first && segment <= range.last);
    });
  }

  /** The segments from a backup's start to its finish, as numbers; undefined for another tool's backup. */
  ownRange(name: string): { first: bigint; last: bigint } | undefined {
    const backup = this.complete.find((candidate) => candidate.BackupName === name);
    if (!backup) return undefined;
    return { first: segmentNumberOfLsn(parseLsn(backup.LSN), this.segmentSize), last: segmentNumberOfLsn(parseLsn(backup.FinishLSN), this.segmentSize) };
  }

  /** The newest finish time of the source's backups, as epoch milliseconds. */
  newestSourceFinish(): number | undefined {
    const times = [...this.sourceDocuments.values()].map(finishTimeOf).filter((time) => time !== undefined);
    return times.length > 0 ? Math.max(...times) : undefined;
  }

  private segmentNumber(segment: string): bigint | undefined {
    try {
      return segmentNumberOfName(segment, this.segmentSize);
    } catch {
      return undefined; // not a segment with this segment size: nothing to decide by
    }
  }
}

/** Which of the WAL files only the target holds prune deletes; it counts those it keeps, to say so once. */
class WalPruning {
  private readonly deletable: (file: WalFileName) => boolean;
  private kept = 0;
  private firstKept: string | undefined;

  constructor(deletable: (file: WalFileName) => boolean) {
    this.deletable = deletable;
  }

  prunes({ file }: StoredWalObject): boolean {
    if (this.deletable(file)) return true;
    if (file.kind !== 'history' && this.kept++ === 0) this.firstKept = file.name;
    return false;
  }

  /** What was kept, for the report. */
  note(report: CopyReport): void {
    if (this.kept === 0) return;
    report.keptByPrune.push(
      `kept ${this.kept} WAL file${this.kept === 1 ? '' : 's'} the source lacks, from ${this.firstKept} on: retention never deletes the WAL a backup needs or the WAL from the newest backup's start on; was it lost at the source?`,
    );
  }
}

function finishTimeOf(document: unknown): number | undefined {
  const finish = (document as { FinishTime?: unknown } | undefined)?.FinishTime;
  const time = typeof finish === 'string' ? Date.parse(finish) : NaN;
  return Number.isNaN(time) ? undefined : time;
}

/** A failure that concerns one object alone (it fails its check at the source): reported, and the copy goes on; undefined for one that stops the copy. */
function objectProblem(error: unknown): string | undefined {
  if (error instanceof IntegrityError) return `${error.message}: not copied`;
  return undefined;
}

/** The WAL phase: relays what the target lacks, and with `prunable`, deletes what the source lacks. */
async function copyWal(
  settings: CopySettings,
  wanted: (object: StoredWalObject) => boolean,
  pruning: WalPruning | undefined,
  report: CopyReport,
  progress: Progress,
): Promise<void> {
  const { source, target, dryRun } = settings;
  const inFlight = new InFlight(settings.concurrency);
  const run = async (work: () => Promise<void>) => {
    await inFlight.room();
    inFlight.add(work().catch((error: unknown) => {
      const problem = objectProblem(error);
      if (problem === undefined) throw error;
      report.problems.push(problem);
    }));
  };
  try {
    for await (const group of joinWal(source, target)) {
      for (const object of group.source) {
        if (!wanted(object)) continue;
        const decision = await decide(object, group, source, target);
        if (decision.kind === 'different') report.problems.push(`${object.key}: ${decision.detail}; not overwritten`);
        if (decision.kind !== 'copy') continue;
        if (dryRun) {
          report.wal.files++;
          report.wal.bytes += object.size;
          continue;
        }
        await run(async () => {
          const outcome = await relayKey(source, target, object.key, { checks: (stored) => relayStages(codecForExtension(object.extension), stored), knownAbsent: true });
          count(outcome, object.key, report, (bytes) => {
            report.wal.files++;
            report.wal.bytes += bytes;
            progress.advance(bytes);
          });
        });
      }
      if (!pruning) continue;
      const held = new Set(group.source.map((object) => object.file.name));
      for (const object of group.target) {
        if (held.has(object.file.name) || !pruning.prunes(object)) continue;
        report.pruned.walFiles++;
        if (!dryRun) await run(() => target.delete(object.key));
      }
    }
    await inFlight.done();
  } catch (error) {
    await inFlight.settled();
    throw error;
  }
  pruning?.note(report);
}

type Decision = { kind: 'copy' } | { kind: 'in-sync' } | { kind: 'different'; detail: string };

/** Whether the target has the source's WAL object already, under the same key or (stored compressed differently) another. */
async function decide(object: StoredWalObject, group: WalGroup, source: Storage, target: Storage): Promise<Decision> {
  const same = group.target.find((candidate) => candidate.key === object.key);
  if (same) {
    return same.size === object.size ? { kind: 'in-sync' } : { kind: 'different', detail: `${target.location} holds ${same.size} bytes under this name, the source ${object.size}` };
  }
  const other = group.target.find((candidate) => candidate.file.name === object.file.name);
  if (!other) return { kind: 'copy' };
  // Stored compressed another way: the content checksums walship recorded tell.
  const [ours, theirs] = await Promise.all([source.head(object.key), target.head(other.key)]);
  const [expected, found] = [ours, theirs].map((head) => expectedContent(head?.metadata ?? {}));
  if (expected!.checksum !== undefined && found!.checksum !== undefined && (expected!.checksum !== found!.checksum || expected!.size !== found!.size)) {
    return { kind: 'different', detail: `${target.location} holds ${other.key} with other content` };
  }
  return { kind: 'in-sync' };
}

async function relayKey(source: Storage, target: Storage, key: string, options: Parameters<typeof relay>[2]): Promise<RelayOutcome | undefined> {
  let stored;
  try {
    stored = await source.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined; // deleted at the source since it was listed (retention)
    throw error;
  }
  return relay(stored, target, options);
}

function count(outcome: RelayOutcome | undefined, key: string, report: CopyReport, copied: (bytes: number) => void): void {
  if (outcome?.kind === 'copied') copied(outcome.bytes);
  else if (outcome?.kind === 'different') report.problems.push(`${key}: ${outcome.detail}; not overwritten`);
  else if (outcome === undefined) log.info(`${key} was deleted at the source while walship copied it`);
}

/** One backup: in sync, its permanent mark to update, different (a problem), or to copy. */
async function copyBackup(settings: CopySettings, backups: BackupSet, name: string, report: CopyReport, progress: Progress): Promise<void> {
  const sourceDocument = backups.sourceDocuments.get(name);
  if (sourceDocument === undefined) {
    report.problems.push(`backup ${name}: its sentinel in ${settings.source.location} cannot be read; not copied`);
    return;
  }
  if (backups.targetDocuments.has(name)) {
    const targetDocument = backups.targetDocuments.get(name);
    if (isDeepStrictEqual(sourceDocument, targetDocument)) return;
    if (targetDocument !== undefined && isDeepStrictEqual(withoutMark(sourceDocument), withoutMark(targetDocument))) {
      report.backups.marked.push(name);
      // backup-mark's order: metadata.json, then the sentinel.
      if (!settings.dryRun) for (const key of [metadataKey(name), sentinelKey(name)]) await relayKey(settings.source, settings.target, key, { replace: true });
      return;
    }
    report.problems.push(`backup ${name}: ${settings.target.location} holds a backup of this name that differs from the source's; left as it is`);
    return;
  }
  await copyBackupObjects(settings, name, sourceDocument, report, progress);
}

function withoutMark(document: unknown): unknown {
  return { ...(document as object), IsPermanent: undefined };
}

/** Copies a backup the target lacks: every object of its folder, then metadata.json, then the sentinel. */
async function copyBackupObjects(settings: CopySettings, name: string, document: unknown, report: CopyReport, progress: Progress): Promise<void> {
  const { source, target, dryRun } = settings;
  const [sourceObjects, targetObjects] = await Promise.all([listAll(source, backupPrefix(name)), listAll(target, backupPrefix(name))]);
  const present = new Map(targetObjects.map((object) => [object.key, object.size]));
  // Walship's sentinel records each part's SHA-256; another tool's backup is copied as it is listed.
  let parts = new Map<string, { SHA256: string; CompressedSize: number }>();
  try {
    parts = new Map(validSentinel(document, sentinelKey(name)).Parts.map((part) => [partKey(name, part.Name), part]));
  } catch (error) {
    if (!(error instanceof WalshipError)) throw error;
  }
  const missingParts = [...parts.keys()].filter((key) => !sourceObjects.some((object) => object.key === key));
  if (missingParts.length > 0) {
    report.problems.push(`backup ${name}: ${missingParts[0]} is missing from ${source.location}, so the backup is damaged there; not copied`);
    return;
  }
  const failures = report.problems.length;
  // metadata.json, the sentinel's twin, goes just before the sentinel.
  const data = sourceObjects.filter((object) => object.key !== metadataKey(name));
  let objects = 0;
  let bytes = 0;
  await forEachConcurrently(data, Math.min(settings.concurrency, BACKUP_PARTS_IN_FLIGHT), async (object) => {
    const targetSize = present.get(object.key);
    if (targetSize === object.size) return; // copied by an earlier run that stopped before the sentinel
    if (targetSize !== undefined) {
      report.problems.push(`${object.key}: ${target.location} holds ${targetSize} bytes under this name, the source ${object.size}; not overwritten`);
      return;
    }
    if (dryRun) {
      objects++;
      bytes += object.size;
      return;
    }
    const part = parts.get(object.key);
    try {
      const outcome = await relayKey(source, target, object.key, {
        knownAbsent: true,
        checks: part ? () => [new VerifyStage({ algorithm: 'sha256', checksum: part.SHA256, size: part.CompressedSize }, object.key)] : undefined,
      });
      if (outcome === undefined) throw new WalshipError(`${object.key} was deleted at the source while walship copied it (by retention?)`);
      count(outcome, object.key, report, (copied) => {
        objects++;
        bytes += copied;
        progress.advance(copied);
      });
    } catch (error) {
      const problem = objectProblem(error);
      if (problem === undefined) throw error;
      report.problems.push(problem);
    }
  });
  if (report.problems.length > failures) {
    report.problems.push(`backup ${name} was not copied: no sentinel was written at ${target.location}, so it is not listed there`);
    return;
  }
  if (!dryRun) {
    if (sourceObjects.some((object) => object.key === metadataKey(name))) await relayKey(source, target, metadataKey(name), { replace: true });
    const outcome = await relayKey(source, target, sentinelKey(name), {});
    if (outcome === undefined) throw new WalshipError(`backup ${name} was deleted at the source while walship copied it (by retention?); run copy again`);
    if (outcome.kind === 'different') {
      report.problems.push(`${sentinelKey(name)}: ${outcome.detail}; not overwritten`);
      return;
    }
  }
  report.backups.copied.push(name);
  report.backups.objects += objects;
  report.backups.bytes += bytes;
}

async function listAll(storage: Storage, prefix: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  for await (const object of storage.list(prefix)) objects.push(object);
  return objects;
}

/**
 * Prune's share of backups: a complete backup at the target that the source
 * no longer holds goes, sentinel first, unless retention would never have
 * deleted it (permanent, or newer than the source's newest backup); then the
 * folders without a sentinel that the source holds nothing of.
 */
async function pruneBackups(settings: CopySettings, backups: BackupSet, report: CopyReport): Promise<void> {
  const { target, dryRun } = settings;
  const newestFinish = backups.newestSourceFinish();
  if (newestFinish === undefined) {
    report.keptByPrune.push('no backup pruned: the source holds no complete backup, so nothing tells which of the copy\'s retention would delete');
    return;
  }
  for (const [name, document] of backups.targetDocuments) {
    if (backups.sourceDocuments.has(name)) continue;
    const finish = finishTimeOf(document);
    if ((document as { IsPermanent?: unknown } | undefined)?.IsPermanent === true) {
      report.keptByPrune.push(`kept backup ${name}: it is permanent at the target (retention never deletes a permanent backup)`);
      continue;
    }
    if (finish === undefined || finish >= newestFinish) {
      report.keptByPrune.push(`kept backup ${name}: it is not older than the source's newest backup, which retention always keeps; was it lost at the source?`);
      continue;
    }
    report.pruned.backups.push(name);
    if (dryRun) continue;
    await target.delete(sentinelKey(name));
    await deleteBackupObjects(target, name);
  }
  const atSource = new Set([...backups.sourceDocuments.keys(), ...backups.source.incompleteBackups().map((folder) => folder.name)]);
  for (const folder of backups.target.incompleteBackups()) {
    if (atSource.has(folder.name) || report.pruned.backups.includes(folder.name)) continue;
    report.pruned.folders.push(folder.name);
    if (!dryRun) await deleteBackupObjects(target, folder.name);
  }
}

/** A target named by its config file, opened only when its turn comes. */
export interface CopyTarget {
  path: string;
  open(): Promise<{ storage: Storage; identity: string }>;
}

export interface CopyRun extends Omit<CopySettings, 'target'> {
  /** The source's StorageSpec identity: a target that is the source itself is refused. */
  sourceIdentity: string;
  targets: CopyTarget[];
}

export type TargetOutcome = { path: string; report: CopyReport } | { path: string; error: string };

/**
 * Copies to each target in turn. One that cannot be reached or refuses is
 * reported and the others still get their copy; each target's problems are
 * logged as they are found in its report.
 */
export async function copyToTargets(run: CopyRun): Promise<{ outcomes: TargetOutcome[]; failed: boolean }> {
  const outcomes: TargetOutcome[] = [];
  let failed = false;
  for (const target of run.targets) {
    try {
      const opened = await target.open();
      if (opened.identity === run.sourceIdentity) throw new WalshipError(`${target.path} names the source storage itself (${opened.storage.location}): a copy needs a storage of its own`);
      const report = await copyArchive({ ...run, target: opened.storage });
      for (const problem of report.problems) log.error(problem);
      for (const kept of report.keptByPrune) log.warning(kept);
      failed ||= report.problems.length > 0;
      outcomes.push({ path: target.path, report });
    } catch (error) {
      if (!(error instanceof WalshipError)) throw error;
      log.error(`copy to ${target.path}: ${error.message}`);
      failed = true;
      outcomes.push({ path: target.path, error: error.message });
    }
  }
  return { outcomes, failed };
}
