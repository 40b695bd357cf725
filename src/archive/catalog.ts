/**
 * What an archive holds, from ONE streamed listing of its prefix (and of
 * walship/ when asked, should the prefix leave it out): each key is
 * classified as it comes (layout.ts) and the raw listing is never kept. WAL
 * goes into the WalIndex as runs; sentinels, backup folders without one,
 * history files, dump sets and walship's records are noted. Then the sentinels are read
 * (a few at a time, each with its metadata.json, which holds WAL-G's
 * permanent mark) and the history files parsed. Retention, verification,
 * status and copies ask their questions here.
 */
import { NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize, parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { recordedEncryption } from '../stages/object-metadata.ts';
import type { ObjectInfo, Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { type BackupSentinel, decodeSentinel, readMetadataDocument, readSentinelDocument, systemIdentifierOf } from './backups.ts';
import { type AttemptRef, attemptsOf } from './attempts.ts';
import { type DrillReportRef, drillReportsToPrune } from './drills.ts';
import { type DumpSentinel, readDumpSentinelDocument, validDumpSentinel } from './dumps.ts';
import { readArchiveRecord } from './identity.ts';
import { ARCHIVE_IDENTITY_KEY, BACKUP_PREFIX, backupOfDeletionRecord, classifyKey, DUMP_PREFIX, dumpOfDeletionRecord, dumpSentinelKey, parseDrillReportKey, parseDumpDrillReportKey, sentinelKey, WAL_PREFIX, WALSHIP_PREFIX } from './layout.ts';
import { readStoredHistory, readStoredSegmentHeader } from './stored-wal.ts';
import { type HistoryEntry, parseHistory, TimelineGraph } from './timelines.ts';
import { type SegmentRange, type WalIndex, WalIndexBuilder, type WalOtherFile } from './wal-index.ts';

export interface CatalogOptions {
  /** Index wal_005/ and read its history files (default true). */
  wal?: boolean;
  /** Read basebackups_005/ and every backup's sentinel (default true). */
  backups?: boolean;
  /** Read dumps_005/ and every dump set's sentinel (default false). */
  dumps?: boolean;
  /** Also list walship/ (its records and drill reports) when wal_005/ or basebackups_005/ is left out; with both, it is listed anyway. */
  records?: boolean;
}

/** The objects and bytes of one kind in the listing. */
export interface StorageUse {
  objects: number;
  bytes: number;
}

/** What the listing held, by kind: WAL, backups (sentinels included), dump sets, walship's records, anything else. */
export type StorageUseByKind = Record<'wal' | 'backups' | 'dumps' | 'walship' | 'other', StorageUse>;

/** A backup folder without a sentinel: an upload in progress, or one that failed and left objects behind. */
export interface IncompleteBackup {
  name: string;
  objects: number;
  bytes: number;
  newest: Date;
}

/** A dump set's folder without a sentinel: a dump-push in progress, or one that failed or was deleted halfway. */
export type IncompleteDump = IncompleteBackup;

/** A segment on the path of timelines that recovery follows. */
export interface SegmentPosition {
  timeline: number;
  segment: bigint;
  /** Its file name. */
  name: string;
}

/**
 * How far recovery from a position can replay the archive along a
 * timeline's history. Recovery ends at `last`; where WAL is stored after a
 * gap, `missing` is the first segment of the gap, and recovery that ends
 * there has stopped short.
 */
export interface RecoveryReach {
  /** The last segment recovery reaches without a gap; undefined when even the first is missing. */
  last?: SegmentPosition;
  /** The first missing segment, when segments are stored after it. */
  missing?: SegmentPosition;
  /** The newest segment stored on the path. */
  end?: SegmentPosition;
}

/** Past any LSN: recovery to the end of the archive. */
const END_OF_WAL = 0xffff_ffff_ffff_ffffn;

/** Which cluster a backup came from, as its sentinel says (whichever tool wrote it). */
export interface BackupOrigin {
  backup: string;
  systemIdentifier: string;
}

interface SentinelRecord {
  /** The backup's or dump set's name. */
  backup: string;
  /** The document, or why it could not be read. */
  document?: unknown;
  problem?: string;
  /** metadata.json, where the backup has one. */
  metadata?: unknown;
}

const DEFAULT_SEGMENT_SIZE = 16 << 20;
/** Sentinels and history files read at once. */
const READ_CONCURRENCY = 8;

export class ArchiveCatalog {
  /** The WAL segment size in bytes, and what says so. */
  readonly segmentSize: number;
  readonly segmentSizeSource: string;
  /** Objects under walship/ (walship's own records), by path. */
  readonly walshipRecords: readonly string[];
  /** Objects that are neither WAL, backups nor walship's records. */
  readonly otherObjects: { count: number; bytes: number };
  /** The listing's objects and bytes by kind (of the folders listed). */
  readonly storageUse: StorageUseByKind;
  /** Whether the listing covered wal_005/ (loaded with the WAL, or with more than one folder: the whole prefix). */
  readonly walListed: boolean;
  /**
   * WAL objects whose listed metadata records them stored unencrypted; undefined
   * when the backend's listing holds no metadata (capabilities.listingIncludesMetadata).
   */
  readonly unencryptedWal: number | undefined;
  private readonly drills: readonly DrillReportRef[];
  /** Dump drill reports, named by their dump set in `backup`'s place. */
  private readonly dumpDrills: readonly DrillReportRef[];
  private readonly sentinels: readonly SentinelRecord[];
  private readonly incomplete: readonly IncompleteBackup[];
  private readonly dumpSentinels: readonly SentinelRecord[];
  private readonly incompleteDumpFolders: readonly IncompleteDump[];
  private readonly graph: TimelineGraph;
  private readonly index: WalIndex | undefined;
  private complete: BackupSentinel[] | undefined;
  private completeDumps: DumpSentinel[] | undefined;

  private constructor(parts: {
    segmentSize: number;
    segmentSizeSource: string;
    walshipRecords: string[];
    otherObjects: { count: number; bytes: number };
    storageUse: StorageUseByKind;
    walListed: boolean;
    unencryptedWal: number | undefined;
    drills: DrillReportRef[];
    dumpDrills: DrillReportRef[];
    sentinels: SentinelRecord[];
    incomplete: IncompleteBackup[];
    dumpSentinels: SentinelRecord[];
    incompleteDumps: IncompleteDump[];
    graph: TimelineGraph;
    index: WalIndex | undefined;
  }) {
    this.segmentSize = parts.segmentSize;
    this.segmentSizeSource = parts.segmentSizeSource;
    this.walshipRecords = parts.walshipRecords;
    this.otherObjects = parts.otherObjects;
    this.storageUse = parts.storageUse;
    this.walListed = parts.walListed;
    this.unencryptedWal = parts.unencryptedWal;
    this.drills = parts.drills;
    this.dumpDrills = parts.dumpDrills;
    this.sentinels = parts.sentinels;
    this.incomplete = parts.incomplete;
    this.dumpSentinels = parts.dumpSentinels;
    this.incompleteDumpFolders = parts.incompleteDumps;
    this.graph = parts.graph;
    this.index = parts.index;
  }

  static async load(storage: Storage, options: CatalogOptions = {}): Promise<ArchiveCatalog> {
    const withWal = options.wal ?? true;
    const withBackups = options.backups ?? true;
    const withDumps = options.dumps ?? false;
    const wal = new WalIndexBuilder();
    const sentinelNames: string[] = [];
    const withMetadata = new Set<string>();
    const folders = new Map<string, IncompleteBackup>();
    const dumpNames: string[] = [];
    const dumpFolders = new Map<string, IncompleteDump>();
    const walshipRecords: string[] = [];
    const drills: DrillReportRef[] = [];
    const dumpDrills: DrillReportRef[] = [];
    const otherObjects = { count: 0, bytes: 0 };
    const use = (): StorageUse => ({ objects: 0, bytes: 0 });
    const storageUse: StorageUseByKind = { wal: use(), backups: use(), dumps: use(), walship: use(), other: use() };
    let unencryptedWal = storage.capabilities.listingIncludesMetadata ? 0 : undefined;
    const count = (kind: keyof StorageUseByKind, object: ObjectInfo) => {
      storageUse[kind].objects++;
      storageUse[kind].bytes += object.size;
    };
    /** One segment to read the segment size from, should nothing record it. */
    let sampleSegment: { key: string; extension: string } | undefined;
    let identityListed = false;

    // One folder is listed alone; more than one, the whole prefix in one listing.
    const folderPrefixes = [withWal && WAL_PREFIX, withBackups && BACKUP_PREFIX, withDumps && DUMP_PREFIX].filter((folder) => folder !== false);
    const prefix = folderPrefixes.length === 1 ? folderPrefixes[0]! : '';
    const recordsListed = prefix === '' || options.records === true;
    const note = (object: ObjectInfo) => {
      const kind = classifyKey(object.key);
      if (kind.kind === 'wal') {
        // Counted wherever the listing covers wal_005/; indexed only when the catalog is asked for the WAL.
        count('wal', object);
        if (!withWal) return;
        if (unencryptedWal !== undefined && object.metadata && recordedEncryption(object.metadata).method === 'none') unencryptedWal++;
        wal.add(kind.file, kind.extension, object);
        if (!sampleSegment && kind.file.kind === 'segment') sampleSegment = { key: object.key, extension: kind.extension };
      } else if (kind.kind === 'sentinel' && withBackups) {
        count('backups', object);
        sentinelNames.push(kind.backup);
      } else if (kind.kind === 'backup-object' && withBackups) {
        count('backups', object);
        noteFolderObject(folders, kind.backup, object);
        if (kind.path === 'metadata.json') withMetadata.add(kind.backup);
      } else if (kind.kind === 'dump-sentinel') {
        if (withDumps) dumpNames.push(kind.dump);
        count('dumps', object);
      } else if (kind.kind === 'dump-object') {
        if (withDumps) noteFolderObject(dumpFolders, kind.dump, object);
        count('dumps', object);
      } else if (kind.kind === 'walship') {
        count('walship', object);
        walshipRecords.push(kind.path);
        identityListed ||= object.key === ARCHIVE_IDENTITY_KEY;
        const drill = parseDrillReportKey(object.key);
        if (drill) drills.push({ key: object.key, ...drill });
        const dumpDrill = parseDumpDrillReportKey(object.key);
        if (dumpDrill) dumpDrills.push({ key: object.key, backup: dumpDrill.dump, time: dumpDrill.time });
      } else {
        otherObjects.count++;
        otherObjects.bytes += object.size;
        count('other', object);
      }
    };
    for await (const object of storage.list(prefix)) note(object);
    if (prefix !== '' && recordsListed) for await (const object of storage.list(WALSHIP_PREFIX)) note(object);

    const sentinels = await readSentinels(sentinelNames, async (backup) => {
      const [document, metadata] = await Promise.all([
        readSentinelDocument(storage, backup),
        withMetadata.has(backup) ? readMetadataDocument(storage, backup) : undefined,
      ]);
      return { document, metadata };
    });
    const dumpSentinels = await readSentinels(dumpNames, async (dump) => ({ document: await readDumpSentinelDocument(storage, dump) }));
    let index: WalIndex | undefined;
    let size = { bytes: DEFAULT_SEGMENT_SIZE, source: 'not needed: the catalog was loaded without WAL' };
    let graph = new TimelineGraph(new Map());
    if (withWal) {
      // A listing of wal_005/ alone cannot tell whether the record exists: it is asked for.
      size = await resolveSegmentSize(storage, { identityListed: identityListed || !recordsListed, sentinels, sampleSegment });
      try {
        index = wal.finish(size.bytes);
      } catch (error) {
        if (!(error instanceof WalshipError)) throw error;
        throw new WalshipError(`${error.message} in ${storage.location}, but the segment size comes from ${size.source}`);
      }
      graph = new TimelineGraph(await readHistories(storage, index.otherFiles('history')));
    }
    return new ArchiveCatalog({
      segmentSize: size.bytes,
      segmentSizeSource: size.source,
      walshipRecords,
      otherObjects,
      storageUse,
      walListed: prefix === '' || prefix === WAL_PREFIX,
      unencryptedWal,
      drills,
      dumpDrills,
      sentinels,
      incomplete: withoutSentinel(folders, sentinelNames),
      dumpSentinels,
      incompleteDumps: withoutSentinel(dumpFolders, dumpNames),
      graph,
      index,
    });
  }

  /** The listing covered wal_005/ and found nothing there: the archive holds no WAL to list again. */
  holdsNoWal(): boolean {
    return this.walListed && this.storageUse.wal.objects === 0;
  }

  /**
   * The complete backups, walship's and WAL-G's, oldest first by FINISH time
   * (never by name: after pg_upgrade, names start over at timeline 1).
   * Sentinels walship cannot read (damaged, or of a tool other than walship
   * and WAL-G) are left out with a warning, so they never hide the others.
   */
  backups(): readonly BackupSentinel[] {
    if (!this.complete) {
      const backups: BackupSentinel[] = [];
      for (const { backup, document, problem, metadata } of this.sentinels) {
        try {
          if (problem !== undefined) throw new WalshipError(problem);
          backups.push(decodeSentinel(backup, { sentinel: document, metadata }, sentinelKey(backup)));
        } catch (error) {
          if (!(error instanceof WalshipError)) throw error;
          log.warning(`skipping backup ${backup}: ${error.message}`);
        }
      }
      this.complete = backups.sort((a, b) => a.FinishTime.localeCompare(b.FinishTime) || a.BackupName.localeCompare(b.BackupName));
    }
    return this.complete;
  }

  /** Backup folders without a sentinel, by name. */
  incompleteBackups(): readonly IncompleteBackup[] {
    return this.incomplete;
  }

  /**
   * The complete dump sets (loaded with `dumps: true`), oldest first by
   * finish time; sentinels that cannot be read are left out with a warning.
   */
  dumpSets(): readonly DumpSentinel[] {
    if (!this.completeDumps) {
      const sets: DumpSentinel[] = [];
      for (const { backup: name, document, problem } of this.dumpSentinels) {
        try {
          if (problem !== undefined) throw new WalshipError(problem);
          sets.push(validDumpSentinel(document, dumpSentinelKey(name)));
        } catch (error) {
          if (!(error instanceof WalshipError)) throw error;
          log.warning(`skipping dump set ${name}: ${error.message}`);
        }
      }
      this.completeDumps = sets.sort((a, b) => a.FinishTime.localeCompare(b.FinishTime) || a.DumpName.localeCompare(b.DumpName));
    }
    return this.completeDumps;
  }

  /** Every dump set with a sentinel, readable or not, by name. */
  dumpSentinelNames(): string[] {
    return this.dumpSentinels.map((record) => record.backup);
  }

  /** Dump set folders without a sentinel, by name: retention's garbage once they are old enough. */
  incompleteDumps(): readonly IncompleteDump[] {
    return this.incompleteDumpFolders;
  }

  /** The system identifier of every backup whose sentinel names one, walship's or another tool's, by name. */
  backupOrigins(): BackupOrigin[] {
    return this.sentinels.flatMap(({ backup, document }) => {
      const systemIdentifier = systemIdentifierOf(document);
      return systemIdentifier === undefined ? [] : [{ backup, systemIdentifier }];
    });
  }

  /**
   * Every backup with a sentinel, whichever tool wrote it, by name, and its
   * document; undefined where it could not be read at all.
   */
  sentinelDocuments(): ReadonlyMap<string, unknown> {
    return new Map(this.sentinels.map(({ backup, document }) => [backup, document]));
  }

  /** Backups a delete has begun to remove (walship/deleting/), by name: their folders go even while young. */
  deletionsBegun(): string[] {
    return this.walshipRecords.map(backupOfDeletionRecord).filter((name) => name !== undefined).sort();
  }

  /** Dump sets a delete has begun to remove (walship/deleting/), by name. */
  dumpDeletionsBegun(): string[] {
    return this.walshipRecords.map(dumpOfDeletionRecord).filter((name) => name !== undefined).sort();
  }

  /** Sentinels that could not be read at all (damaged, not JSON), with the reason. */
  unreadableSentinels(): { backup: string; reason: string }[] {
    return this.sentinels.flatMap(({ backup, problem }) => (problem === undefined ? [] : [{ backup, reason: problem }]));
  }

  /** The drill reports stored (listed with the whole archive, or with `records`), in listing order: by time. */
  drillReports(): readonly DrillReportRef[] {
    return this.drills;
  }

  /** The attempts of cron's jobs recorded under walship/attempts/ (listed with the whole archive, or with `records`), oldest first. */
  attempts(): AttemptRef[] {
    return attemptsOf(this.walshipRecords.map((path) => `${WALSHIP_PREFIX}${path}`));
  }

  /**
   * The drill reports retention may delete once it keeps only
   * `keptBackups` (by default every backup with a sentinel): those of deleted
   * backups past DRILL_REPORT_RETENTION_DAYS (drills.ts).
   */
  drillReportsToPrune(keptBackups: Iterable<string> = this.sentinels.map((record) => record.backup), now = new Date()): DrillReportRef[] {
    return drillReportsToPrune(this.drills, new Set(keptBackups), now);
  }

  /** The same for dump drill reports (`drill --dump`), given the dump sets that stay. */
  dumpDrillReportsToPrune(keptDumps: Iterable<string>, now = new Date()): DrillReportRef[] {
    return drillReportsToPrune(this.dumpDrills, new Set(keptDumps), now);
  }

  timelines(): TimelineGraph {
    return this.graph;
  }

  get wal(): WalIndex {
    if (!this.index) throw new Error('the archive catalog was loaded without WAL');
    return this.index;
  }

  /**
   * The backups recovery to `timeline` can start from, oldest first: those
   * that started on its history (on an ancestor, before it branched off).
   */
  backupsOnHistoryOf(timeline: number): BackupSentinel[] {
    const spans = this.graph.ancestry(timeline);
    const onHistory = (backup: BackupSentinel) => {
      const start = parseLsn(backup.LSN);
      return spans.some((span) => span.timeline === backup.Timeline && span.begin <= start && (span.end === undefined || start < span.end));
    };
    return this.backups().filter(onHistory).sort((a, b) => (parseLsn(a.LSN) < parseLsn(b.LSN) ? -1 : 1));
  }

  /** The WAL a backup needs to become consistent: from its start LSN to its finish LSN, on its timeline. */
  walNeededBy(backup: BackupSentinel): SegmentRange[] {
    return this.segmentsBetween(backup.Timeline, parseLsn(backup.LSN), parseLsn(backup.FinishLSN));
  }

  /**
   * How far recovery to `timeline` from `fromLsn` can replay what the
   * archive holds (see RecoveryReach), following the timeline's history as
   * segmentsBetween does.
   */
  recoveryReach(timeline: number, fromLsn: bigint): RecoveryReach {
    const reach: RecoveryReach = {};
    let gap: SegmentPosition | undefined;
    const position = (onTimeline: number, segment: bigint): SegmentPosition => ({ timeline: onTimeline, segment, name: this.wal.segmentName(onTimeline, segment) });
    for (const range of this.segmentsBetween(timeline, fromLsn, END_OF_WAL)) {
      if (!gap) {
        const firstGap = this.wal.gaps(range.timeline, range.first, range.last)[0];
        if (firstGap) gap = position(range.timeline, firstGap.first);
        const lastReached = firstGap ? firstGap.first - 1n : range.last;
        if (lastReached >= range.first) reach.last = position(range.timeline, lastReached);
      }
      const stored = this.wal.lastStoredIn(range.timeline, range.first, range.last);
      if (stored !== undefined) reach.end = position(range.timeline, stored);
    }
    // Segment numbers grow along the path, across timelines.
    if (gap && reach.end && reach.end.segment > gap.segment) reach.missing = gap;
    return reach;
  }

  /**
   * The segments that recovery to `timeline` reads from `fromLsn` to
   * `toLsn` (both included), following the timeline's history: each
   * ancestor up to its switch point, whose segment PostgreSQL reads from the
   * next timeline, as it does (XLogFileReadAnyTLI).
   */
  segmentsBetween(timeline: number, fromLsn: bigint, toLsn: bigint): SegmentRange[] {
    const ranges: SegmentRange[] = [];
    if (toLsn < fromLsn) return ranges;
    const lastWanted = segmentNumberOfLsn(toLsn, this.segmentSize);
    for (const span of this.graph.ancestry(timeline)) {
      if (span.end !== undefined && span.end <= fromLsn) continue;
      if (span.begin > toLsn) break;
      const first = segmentNumberOfLsn(fromLsn > span.begin ? fromLsn : span.begin, this.segmentSize);
      const beforeSwitch = span.end === undefined ? undefined : segmentNumberOfLsn(span.end, this.segmentSize) - 1n;
      const last = beforeSwitch !== undefined && beforeSwitch < lastWanted ? beforeSwitch : lastWanted;
      if (first <= last) ranges.push({ timeline: span.timeline, first, last });
    }
    return ranges;
  }
}

function noteFolderObject(folders: Map<string, IncompleteBackup>, name: string, object: { size: number; lastModified: Date }): void {
  const folder = folders.get(name) ?? { name, objects: 0, bytes: 0, newest: object.lastModified };
  folder.objects++;
  folder.bytes += object.size;
  if (object.lastModified > folder.newest) folder.newest = object.lastModified;
  folders.set(name, folder);
}

function withoutSentinel(folders: Map<string, IncompleteBackup>, sentinelNames: string[]): IncompleteBackup[] {
  const complete = new Set(sentinelNames);
  return [...folders.values()].filter((folder) => !complete.has(folder.name)).sort((a, b) => a.name.localeCompare(b.name));
}

/** Reads sentinels (a backup's or a dump set's, by `read`) a few at a time. */
async function readSentinels(names: string[], read: (name: string) => Promise<{ document: unknown; metadata?: unknown }>): Promise<SentinelRecord[]> {
  const records: SentinelRecord[] = [];
  await forEachConcurrently(names, READ_CONCURRENCY, async (backup) => {
    try {
      records.push({ backup, ...(await read(backup)) });
    } catch (error) {
      if (error instanceof NotFoundError) return; // deleted since it was listed
      if (!(error instanceof WalshipError)) throw error;
      records.push({ backup, problem: error.message });
    }
  });
  return records.sort((a, b) => a.backup.localeCompare(b.backup));
}

/**
 * The archive's WAL segment size: as walship/archive.json records it, else
 * as the newest backup that records it says, else from the page header of
 * one stored segment, else 16 MiB (PostgreSQL's default), with a warning.
 */
async function resolveSegmentSize(
  storage: Storage,
  found: { identityListed: boolean; sentinels: readonly SentinelRecord[]; sampleSegment: { key: string; extension: string } | undefined },
): Promise<{ bytes: number; source: string }> {
  if (found.identityListed) {
    const record = await readArchiveRecord(storage).catch((error: unknown) => {
      if (error instanceof WalshipError) return undefined; // damaged: the identity check reports it
      throw error;
    });
    if (record?.walSegmentSize !== undefined) return { bytes: record.walSegmentSize, source: ARCHIVE_IDENTITY_KEY };
  }
  const recorded = found.sentinels
    .map(({ backup, document }) => ({ backup, document: document as { WalSegmentSize?: unknown; FinishTime?: unknown } | undefined }))
    .filter(({ document }) => typeof document?.WalSegmentSize === 'number' && isValidSegmentSize(document.WalSegmentSize))
    .sort((a, b) => String(b.document!.FinishTime).localeCompare(String(a.document!.FinishTime)))[0];
  if (recorded) return { bytes: recorded.document!.WalSegmentSize as number, source: `backup ${recorded.backup}` };
  if (!found.sampleSegment) return { bytes: DEFAULT_SEGMENT_SIZE, source: 'PostgreSQL\'s default (the archive holds no segment)' };
  const reading = await readStoredSegmentHeader(storage, found.sampleSegment.key, found.sampleSegment.extension);
  if ('header' in reading) return { bytes: reading.header.segmentSize, source: `the page header of ${found.sampleSegment.key}` };
  log.warning(`the WAL segment size of ${storage.location} is recorded nowhere and ${found.sampleSegment.key} cannot tell (${reading.unreadable}): assuming 16 MiB`);
  return { bytes: DEFAULT_SEGMENT_SIZE, source: 'an assumption (16 MiB, PostgreSQL\'s default)' };
}

/** Each timeline's parsed history; a file that cannot be read or parsed is left out with a warning. */
async function readHistories(storage: Storage, files: readonly WalOtherFile[]): Promise<Map<number, HistoryEntry[]>> {
  const histories = new Map<number, HistoryEntry[]>();
  await forEachConcurrently(files, READ_CONCURRENCY, async ({ key, extension, file }) => {
    try {
      const reading = await readStoredHistory(storage, key, extension);
      if ('unreadable' in reading) throw new WalshipError(reading.unreadable);
      if (!histories.has(file.timeline)) histories.set(file.timeline, parseHistory(reading.text, file.timeline, key));
    } catch (error) {
      if (error instanceof NotFoundError) return; // deleted since it was listed
      if (!(error instanceof WalshipError)) throw error;
      log.warning(`skipping timeline history ${key}: ${error.message}`);
    }
  });
  return histories;
}
