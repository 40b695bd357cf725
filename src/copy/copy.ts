/**
 * walship copy: bring one target storage up to date with a source.
 *
 *   1. both archives' identity: never mix two clusters' archives, nor two
 *      encryptions; the target gets the source's record of both
 *   2. one listing of each side's whole prefix (the archive catalog, sentinels read)
 *   3. one listing of each side's wal_005/, joined as they come (archive/difference.ts):
 *      each WAL file the target lacks is relayed as stored, checked on the way;
 *      a side whose catalog found no WAL is not listed again
 *   4. each complete backup the target lacks: its folder listed on each side
 *      (at the target only when its catalog found objects there: a run that
 *      stopped before the sentinel), its parts (checked against the
 *      SHA-256 its sentinel records; WAL-G's, which records none, decoded on
 *      the side) and other objects, metadata.json, and last the sentinel, so a
 *      half-copied backup is never listed at the target
 *   5. each complete dump set the target lacks, in the same way (its objects
 *      checked against the SHA-256 its sentinel records, the sentinel last)
 *   6. with prune: what the source no longer holds, of the kinds retention deletes
 *
 * An object at the target is never replaced: one under the same name with
 * another size is reported, and the copy exits 1. Objects are put
 * create-only and appear whole or not at all, so a copy killed at any point
 * leaves nothing half-written, and running it again copies only what is
 * still missing: a second run transfers nothing.
 */
import { isDeepStrictEqual } from 'node:util';
import { type BackupSentinel, deleteBackupObjects, partEncryption } from '../archive/backups.ts';
import { ArchiveCatalog } from '../archive/catalog.ts';
import { joinWal, type StoredWalObject, type WalGroup } from '../archive/difference.ts';
import { deleteDumpObjects, type DumpSentinel } from '../archive/dumps.ts';
import { backupPrefix, dumpObjectKey, dumpPrefix, dumpSentinelKey, metadataKey, partExtension, partKey, partsPrefix, sentinelKey } from '../archive/layout.ts';
import { IntegrityError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { segmentNumberOfName, type WalFileName } from '../postgres/wal-name.ts';
import { formatBytes, formatDuration, formatRate, Progress } from '../progress/progress.ts';
import { VerifyStage } from '../stages/checksum.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
import { expectedContent } from '../stages/object-metadata.ts';
import type { Stage } from '../stages/pipeline.ts';
import { relayStages } from '../stages/transfer.ts';
import type { ObjectInfo, Storage, StoredObject } from '../storage/storage.ts';
import { forEachConcurrently, InFlight } from '../util/concurrency.ts';
import { followArchiveRecord, readRecords, requireSameCluster, requireSameKey } from './identity.ts';
import { relay, type RelayOptions, type RelayOutcome } from './relay.ts';

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
  dumps: { copied: string[]; objects: number; bytes: number; marked: string[] };
  pruned: { walFiles: number; backups: string[]; folders: string[]; dumps: string[]; dumpFolders: string[] };
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
    dumps: { copied: [], objects: 0, bytes: 0, marked: [] },
    pruned: { walFiles: 0, backups: [], folders: [], dumps: [], dumpFolders: [] },
    problems: [],
    keptByPrune: [],
    elapsedMs: 0,
  };
  await requireSameKey(source, target);
  const [sourceRecord, targetRecord] = await readRecords(source, target);
  const [sourceCatalog, targetCatalog] = await Promise.all([ArchiveCatalog.load(source, { wal: false, dumps: true }), ArchiveCatalog.load(target, { wal: false, dumps: true })]);
  const sourceSide = { storage: source, record: sourceRecord, origins: sourceCatalog.backupOrigins() };
  requireSameCluster(sourceSide, { storage: target, record: targetRecord, origins: targetCatalog.backupOrigins() });
  await followArchiveRecord(sourceSide, { storage: target, record: targetRecord }, !dryRun);

  const backups = new BackupSet(sourceCatalog, targetCatalog, source.location, sourceRecord?.walSegmentSize);
  const copied = backups.selected(selection);
  const progress = new Progress({ label: `copy to ${target.location}` });
  try {
    const pruning = settings.prune && selection.kind !== 'backup' ? backups.walPruning(report) : undefined;
    // A side whose catalog's listing (of the whole prefix) found no WAL is not listed again.
    const noWal = { source: sourceCatalog.holdsNoWal(), target: targetCatalog.holdsNoWal() };
    await copyWal(settings, backups.walFilter(selection, copied, settings.withoutHistory), pruning, noWal, report, progress);
    for (const name of copied) await copyBackup(settings, backups, name, report, progress);
    const dumps = new DumpSetPair(sourceCatalog, targetCatalog);
    if (selection.kind === 'all') for (const dump of dumps.source) await copyDump(settings, dumps, dump, report, progress);
    if (settings.prune && selection.kind === 'all') {
      await pruneBackups(settings, backups, report);
      await pruneDumps(settings, dumps, report);
    }
  } finally {
    report.elapsedMs = Date.now() - startedAt;
    progress.finish(dryRun ? undefined : summaryLine(report));
  }
  return report;
}

export function summaryLine(report: CopyReport): string {
  const { wal, backups, dumps, pruned } = report;
  const bytes = wal.bytes + backups.bytes + dumps.bytes;
  const plural = (count: number, what: string) => `${count} ${what}${count === 1 ? '' : 's'}`;
  const parts = [
    `${report.dryRun ? 'would copy' : 'copied'} ${plural(wal.files, 'WAL file')} (${formatBytes(wal.bytes)}) and ${plural(backups.copied.length, 'backup')} (${formatBytes(backups.bytes)})`,
  ];
  if (dumps.copied.length > 0) parts.push(`${report.dryRun ? 'would copy' : 'copied'} ${plural(dumps.copied.length, 'dump set')} (${formatBytes(dumps.bytes)})`);
  const marked = [...backups.marked, ...dumps.marked];
  if (marked.length > 0) parts.push(`${report.dryRun ? 'would update' : 'updated'} the permanent mark of ${marked.join(', ')}`);
  const prunedBackups = pruned.backups.length + pruned.folders.length;
  const prunedDumps = pruned.dumps.length + pruned.dumpFolders.length;
  if (pruned.walFiles + prunedBackups + prunedDumps > 0) {
    const what = [plural(pruned.walFiles, 'WAL file'), plural(prunedBackups, 'backup'), ...(prunedDumps > 0 ? [plural(prunedDumps, 'dump set')] : [])];
    parts.push(`${report.dryRun ? 'would prune' : 'pruned'} ${what.slice(0, -1).join(', ')} and ${what.at(-1)}`);
  }
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
  /** The complete backups at the source (walship's and WAL-G's), oldest first by finish time. */
  private readonly complete: readonly BackupSentinel[];
  private readonly targetComplete: readonly BackupSentinel[];
  private readonly segmentSize: number;
  private readonly sourceLocation: string;

  constructor(source: ArchiveCatalog, target: ArchiveCatalog, sourceLocation: string, recordedSegmentSize: number | undefined) {
    this.sourceLocation = sourceLocation;
    this.source = source;
    this.target = target;
    this.sourceDocuments = source.sentinelDocuments();
    this.targetDocuments = target.sentinelDocuments();
    this.complete = source.backups();
    this.targetComplete = target.backups();
    this.segmentSize = recordedSegmentSize ?? this.complete.findLast((backup) => backup.WalSegmentSize)?.WalSegmentSize ?? DEFAULT_SEGMENT_SIZE;
  }

  sourceBackup(name: string): BackupSentinel | undefined {
    return this.complete.find((backup) => backup.BackupName === name);
  }

  targetBackup(name: string): BackupSentinel | undefined {
    return this.targetComplete.find((backup) => backup.BackupName === name);
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
    return this.complete.length > 0 ? Math.max(...this.complete.map((backup) => Date.parse(backup.FinishTime))) : undefined;
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
  empty: { source: boolean; target: boolean },
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
    for await (const group of joinWal(source, target, empty)) {
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
          const outcome = await relayKey(source, target, object.key, { checks: (stored) => relayStages(source, codecForExtension(object.extension), stored), knownAbsent: true });
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

async function relayKey(source: Storage, target: Storage, key: string, options: RelayOptions): Promise<RelayOutcome | undefined> {
  let stored;
  try {
    stored = await source.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined; // deleted at the source since it was listed (retention)
    throw error;
  }
  return relay(stored, target, { ...options, reopen: () => source.get(key) });
}

function count(outcome: RelayOutcome | undefined, key: string, report: CopyReport, copied: (bytes: number) => void): void {
  if (outcome?.kind === 'copied') copied(outcome.bytes);
  else if (outcome?.kind === 'different') report.problems.push(`${key}: ${outcome.detail}; not overwritten`);
  else if (outcome === undefined) log.info(`${key} was deleted at the source while walship copied it`);
}

/** One backup: in sync, its permanent mark to update, different (a problem), or to copy. */
async function copyBackup(settings: CopySettings, backups: BackupSet, name: string, report: CopyReport, progress: Progress): Promise<void> {
  const backup = backups.sourceBackup(name);
  if (!backup) {
    report.problems.push(`backup ${name}: its sentinel in ${settings.source.location} cannot be read; not copied`);
    return;
  }
  if (backups.targetDocuments.has(name)) {
    const held = backups.targetBackup(name);
    if (!held || !isDeepStrictEqual(withoutMark(backup), withoutMark(held))) {
      report.problems.push(`backup ${name}: ${settings.target.location} holds a backup of this name that differs from the source's; left as it is`);
      return;
    }
    if (held.IsPermanent === backup.IsPermanent) return;
    report.backups.marked.push(name);
    // backup-mark's order: metadata.json, then the sentinel (WAL-G's mark is in metadata.json alone).
    if (!settings.dryRun) for (const key of [metadataKey(name), sentinelKey(name)]) await relayKey(settings.source, settings.target, key, { replace: true });
    return;
  }
  // walship's sentinel records each part's SHA-256; WAL-G's parts are decoded on the side, as backup-fetch reads them.
  const recorded = new Map(backup.Parts.map((part) => [partKey(name, part.Name), { SHA256: part.SHA256, CompressedSize: part.CompressedSize }]));
  const copied = await copySet(settings, {
    what: `backup ${name}`,
    prefix: backupPrefix(name),
    recorded,
    targetHoldsSome: backups.target.incompleteBackups().some((folder) => folder.name === name),
    unrecorded: (key, stored) => (key.startsWith(partsPrefix(name)) ? relayStages(settings.source, codecForExtension(partExtension(key)), stored, { verify: false, recorded: partEncryption(backup) }) : []),
    beforeSentinel: [metadataKey(name)],
    sentinel: sentinelKey(name),
  }, report, progress);
  if (!copied) return;
  report.backups.copied.push(name);
  report.backups.objects += copied.objects;
  report.backups.bytes += copied.bytes;
}

function withoutMark(document: unknown): unknown {
  return { ...(document as object), IsPermanent: undefined };
}

/** One dump set: in sync, its permanent mark to update (dump-mark rewrites the sentinel), different (a problem), or to copy. */
async function copyDump(settings: CopySettings, dumps: DumpSetPair, dump: DumpSentinel, report: CopyReport, progress: Progress): Promise<void> {
  const name = dump.DumpName;
  const held = dumps.target.get(name);
  if (held) {
    if (isDeepStrictEqual(dump, held)) return;
    if (!isDeepStrictEqual(withoutMark(dump), withoutMark(held))) {
      report.problems.push(`dump set ${name}: ${settings.target.location} holds a dump set of this name that differs from the source's; left as it is`);
      return;
    }
    report.dumps.marked.push(name);
    if (!settings.dryRun) await relayKey(settings.source, settings.target, dumpSentinelKey(name), { replace: true });
    return;
  }
  const objects = [dump.Globals, ...dump.Databases];
  const copied = await copySet(settings, {
    what: `dump set ${name}`,
    prefix: dumpPrefix(name),
    recorded: new Map(objects.map((object) => [dumpObjectKey(name, object.Object), object])),
    targetHoldsSome: dumps.targetCatalog.incompleteDumps().some((folder) => folder.name === name),
    unrecorded: () => [],
    beforeSentinel: [],
    sentinel: dumpSentinelKey(name),
  }, report, progress);
  if (!copied) return;
  report.dumps.copied.push(name);
  report.dumps.objects += copied.objects;
  report.dumps.bytes += copied.bytes;
}

/** A set of objects under one folder that its sentinel, written last, makes exist: a backup or a dump set. */
interface CommittedSet {
  what: string;
  prefix: string;
  /** The SHA-256 and size of the stored objects the sentinel records, by key: each must be at the source, and is checked. */
  recorded: ReadonlyMap<string, { SHA256: string; CompressedSize: number }>;
  /** Whether the target's catalog listed objects in the folder (an earlier run's, stopped before the sentinel): if not, it is not listed again. */
  targetHoldsSome: boolean;
  /** How to check an object the sentinel records nothing of. */
  unrecorded: (key: string, stored: StoredObject) => Stage[];
  /** Documents that change in place, relayed after the folder and just before the sentinel: metadata.json, the sentinel's twin. */
  beforeSentinel: string[];
  sentinel: string;
}

/**
 * Copies a set the target lacks: every object of its folder, then the
 * documents before the sentinel, then the sentinel; undefined (and the
 * problems reported) when it could not be copied whole, so it has no
 * sentinel at the target and is not listed there.
 */
async function copySet(settings: CopySettings, set: CommittedSet, report: CopyReport, progress: Progress): Promise<{ objects: number; bytes: number } | undefined> {
  const { source, target, dryRun } = settings;
  const [sourceObjects, targetObjects] = await Promise.all([listAll(source, set.prefix), set.targetHoldsSome ? listAll(target, set.prefix) : []]);
  const present = new Map(targetObjects.map((object) => [object.key, object.size]));
  const missing = [...set.recorded.keys()].find((key) => !sourceObjects.some((object) => object.key === key));
  if (missing !== undefined) {
    report.problems.push(`${set.what}: ${missing} is missing from ${source.location}, so it is damaged there; not copied`);
    return undefined;
  }
  const failures = report.problems.length;
  const data = sourceObjects.filter((object) => !set.beforeSentinel.includes(object.key));
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
    const recorded = set.recorded.get(object.key);
    try {
      const outcome = await relayKey(source, target, object.key, {
        knownAbsent: true,
        recordedSha256: recorded?.SHA256,
        checks: (stored) => (recorded ? [new VerifyStage({ algorithm: 'sha256', checksum: recorded.SHA256, size: recorded.CompressedSize }, object.key)] : set.unrecorded(object.key, stored)),
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
    report.problems.push(`${set.what} was not copied: no sentinel was written at ${target.location}, so it is not listed there`);
    return undefined;
  }
  if (!dryRun) {
    for (const key of set.beforeSentinel) if (sourceObjects.some((object) => object.key === key)) await relayKey(source, target, key, { replace: true });
    const outcome = await relayKey(source, target, set.sentinel, {});
    if (outcome === undefined) throw new WalshipError(`${set.what} was deleted at the source while walship copied it (by retention?); run copy again`);
    if (outcome.kind === 'different') {
      report.problems.push(`${set.sentinel}: ${outcome.detail}; not overwritten`);
      return undefined;
    }
  }
  return { objects, bytes };
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
  for (const name of backups.targetDocuments.keys()) {
    if (backups.sourceDocuments.has(name)) continue;
    const held = backups.targetBackup(name);
    const finish = held && Date.parse(held.FinishTime);
    if (held?.IsPermanent) {
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

/** The complete dump sets of each side. */
class DumpSetPair {
  /** Oldest first by finish time. */
  readonly source: readonly DumpSentinel[];
  readonly target: ReadonlyMap<string, DumpSentinel>;
  readonly sourceCatalog: ArchiveCatalog;
  readonly targetCatalog: ArchiveCatalog;

  constructor(source: ArchiveCatalog, target: ArchiveCatalog) {
    this.sourceCatalog = source;
    this.targetCatalog = target;
    this.source = source.dumpSets();
    this.target = new Map(target.dumpSets().map((dump) => [dump.DumpName, dump]));
  }
}

/**
 * Prune's share of dump sets, by retention's rules for them: a dump set at
 * the target the source no longer holds goes, sentinel first, unless it is
 * permanent or not older than the source's newest set (which retention
 * always keeps); then the folders without a sentinel the source holds nothing of.
 */
async function pruneDumps(settings: CopySettings, dumps: DumpSetPair, report: CopyReport): Promise<void> {
  const { target, dryRun } = settings;
  const held = new Set(dumps.source.map((dump) => dump.DumpName));
  const newestFinish = dumps.source.at(-1)?.FinishTime;
  for (const [name, dump] of dumps.target) {
    if (held.has(name)) continue;
    if (newestFinish === undefined) {
      report.keptByPrune.push(`kept dump set ${name}: the source holds no complete dump set, so nothing tells which of the copy's retention would delete`);
      continue;
    }
    if (dump.IsPermanent) {
      report.keptByPrune.push(`kept dump set ${name}: it is permanent at the target (retention never deletes a permanent dump set)`);
      continue;
    }
    if (dump.FinishTime >= newestFinish) {
      report.keptByPrune.push(`kept dump set ${name}: it is not older than the source's newest dump set, which retention always keeps; was it lost at the source?`);
      continue;
    }
    report.pruned.dumps.push(name);
    if (dryRun) continue;
    await target.delete(dumpSentinelKey(name));
    await deleteDumpObjects(target, name);
  }
  const atSource = new Set([...held, ...dumps.sourceCatalog.incompleteDumps().map((folder) => folder.name)]);
  for (const folder of dumps.targetCatalog.incompleteDumps()) {
    if (atSource.has(folder.name) || report.pruned.dumps.includes(folder.name)) continue;
    report.pruned.dumpFolders.push(folder.name);
    if (!dryRun) await deleteDumpObjects(target, folder.name);
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
