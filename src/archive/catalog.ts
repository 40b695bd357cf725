/**
 * What an archive holds, from ONE streamed listing of its prefix: each key is
 * classified as it comes (layout.ts) and the raw listing is never kept. WAL
 * goes into the WalIndex as runs; sentinels, backup folders without one,
 * history files and walship's records are noted. Then the sentinels are read
 * (a few at a time) and the history files parsed. Retention, verification,
 * status and copies ask their questions here.
 */
import { NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize, parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { type BackupSentinel, readSentinelDocument, systemIdentifierOf, validSentinel } from './backups.ts';
import { readArchiveRecord } from './identity.ts';
import { ARCHIVE_IDENTITY_KEY, BACKUP_PREFIX, classifyKey, sentinelKey, WAL_PREFIX } from './layout.ts';
import { readStoredHistory, readStoredSegmentHeader } from './stored-wal.ts';
import { type HistoryEntry, parseHistory, TimelineGraph } from './timelines.ts';
import { type SegmentRange, type WalIndex, WalIndexBuilder, type WalOtherFile } from './wal-index.ts';

export interface CatalogOptions {
  /** Index wal_005/ and read its history files (default true). */
  wal?: boolean;
  /** Read basebackups_005/ and every backup's sentinel (default true). */
  backups?: boolean;
}

/** A backup folder without a sentinel: an upload in progress, or one that failed and left objects behind. */
export interface IncompleteBackup {
  name: string;
  objects: number;
  bytes: number;
  newest: Date;
}

/** Which cluster a backup came from, as its sentinel says (whichever tool wrote it). */
export interface BackupOrigin {
  backup: string;
  systemIdentifier: string;
}

interface SentinelRecord {
  backup: string;
  /** The document, or why it could not be read. */
  document?: unknown;
  problem?: string;
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
  private readonly sentinels: readonly SentinelRecord[];
  private readonly incomplete: readonly IncompleteBackup[];
  private readonly graph: TimelineGraph;
  private readonly index: WalIndex | undefined;
  private complete: BackupSentinel[] | undefined;

  private constructor(parts: {
    segmentSize: number;
    segmentSizeSource: string;
    walshipRecords: string[];
    otherObjects: { count: number; bytes: number };
    sentinels: SentinelRecord[];
    incomplete: IncompleteBackup[];
    graph: TimelineGraph;
    index: WalIndex | undefined;
  }) {
    this.segmentSize = parts.segmentSize;
    this.segmentSizeSource = parts.segmentSizeSource;
    this.walshipRecords = parts.walshipRecords;
    this.otherObjects = parts.otherObjects;
    this.sentinels = parts.sentinels;
    this.incomplete = parts.incomplete;
    this.graph = parts.graph;
    this.index = parts.index;
  }

  static async load(storage: Storage, options: CatalogOptions = {}): Promise<ArchiveCatalog> {
    const withWal = options.wal ?? true;
    const withBackups = options.backups ?? true;
    const wal = new WalIndexBuilder();
    const sentinelNames: string[] = [];
    const folders = new Map<string, IncompleteBackup>();
    const walshipRecords: string[] = [];
    const otherObjects = { count: 0, bytes: 0 };
    /** One segment to read the segment size from, should nothing record it. */
    let sampleSegment: { key: string; extension: string } | undefined;
    let identityListed = false;

    const prefix = withWal && withBackups ? '' : withWal ? WAL_PREFIX : BACKUP_PREFIX;
    for await (const object of storage.list(prefix)) {
      const kind = classifyKey(object.key);
      if (kind.kind === 'wal' && withWal) {
        wal.add(kind.file, kind.extension, object);
        if (!sampleSegment && kind.file.kind === 'segment') sampleSegment = { key: object.key, extension: kind.extension };
      } else if (kind.kind === 'sentinel' && withBackups) {
        sentinelNames.push(kind.backup);
      } else if (kind.kind === 'backup-object' && withBackups) {
        const folder = folders.get(kind.backup) ?? { name: kind.backup, objects: 0, bytes: 0, newest: object.lastModified };
        folder.objects++;
        folder.bytes += object.size;
        if (object.lastModified > folder.newest) folder.newest = object.lastModified;
        folders.set(kind.backup, folder);
      } else if (kind.kind === 'walship') {
        walshipRecords.push(kind.path);
        identityListed ||= object.key === ARCHIVE_IDENTITY_KEY;
      } else {
        otherObjects.count++;
        otherObjects.bytes += object.size;
      }
    }

    const sentinels = await readSentinels(storage, sentinelNames);
    const complete = new Set(sentinelNames);
    const incomplete = [...folders.values()].filter((folder) => !complete.has(folder.name)).sort((a, b) => a.name.localeCompare(b.name));
    let index: WalIndex | undefined;
    let size = { bytes: DEFAULT_SEGMENT_SIZE, source: 'not needed: the catalog was loaded without WAL' };
    let graph = new TimelineGraph(new Map());
    if (withWal) {
      // A listing of wal_005/ alone cannot tell whether the record exists: it is asked for.
      size = await resolveSegmentSize(storage, { identityListed: identityListed || prefix !== '', sentinels, sampleSegment });
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
      sentinels,
      incomplete,
      graph,
      index,
    });
  }

  /**
   * The complete backups walship can restore, oldest first by FINISH time
   * (never by name: after pg_upgrade, names start over at timeline 1).
   * Sentinels walship cannot read (another tool's, or damaged) are left out
   * with a warning, so they never hide the others.
   */
  backups(): readonly BackupSentinel[] {
    if (!this.complete) {
      const backups: BackupSentinel[] = [];
      for (const { backup, document, problem } of this.sentinels) {
        try {
          if (problem !== undefined) throw new WalshipError(problem);
          backups.push(validSentinel(document, sentinelKey(backup)));
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

  /** Sentinels that could not be read at all (damaged, not JSON), with the reason. */
  unreadableSentinels(): { backup: string; reason: string }[] {
    return this.sentinels.flatMap(({ backup, problem }) => (problem === undefined ? [] : [{ backup, reason: problem }]));
  }

  timelines(): TimelineGraph {
    return this.graph;
  }

  get wal(): WalIndex {
    if (!this.index) throw new Error('the archive catalog was loaded without WAL');
    return this.index;
  }

  /** The WAL a backup needs to become consistent: from its start LSN to its finish LSN, on its timeline. */
  walNeededBy(backup: BackupSentinel): SegmentRange[] {
    return this.segmentsBetween(backup.Timeline, parseLsn(backup.LSN), parseLsn(backup.FinishLSN));
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

async function readSentinels(storage: Storage, names: string[]): Promise<SentinelRecord[]> {
  const records: SentinelRecord[] = [];
  await forEachConcurrently(names, READ_CONCURRENCY, async (backup) => {
    try {
      records.push({ backup, document: await readSentinelDocument(storage, backup) });
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
