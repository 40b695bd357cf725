/**
 * Carries out a retention plan so that a delete killed at any point leaves
 * every listed backup restorable, and running it again finishes the job:
 *
 *   1. a record under walship/deleting/ for each backup (or dump set) to
 *      delete, then its sentinel: it leaves backup-list (dump-list) at once,
 *      and the record says its folder may go even while its objects are young;
 *   2. the folders: those sets' other objects and the folders earlier
 *      deletes left, streamed from one listing of basebackups_005/ (or
 *      dumps_005/) in batches; incomplete folders old enough to go; then the
 *      records;
 *   3. the drill reports the plan prunes;
 *   4. the WAL, streamed from one listing of wal_005/ in batches, only
 *      once no backup whose WAL it is remains listed.
 *
 * A storage error stops the run: no new request starts, and it is reported.
 */
import { Readable } from 'node:stream';
import { deleteBackupObjects } from '../archive/backups.ts';
import { deleteDumpObjects } from '../archive/dumps.ts';
import { BACKUP_PREFIX, backupPrefix, classifyKey, deletionRecordKey, DUMP_PREFIX, dumpPrefix, dumpSentinelKey, sentinelKey, WAL_PREFIX } from '../archive/layout.ts';
import { segmentNumberOfName } from '../postgres/wal-name.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { subtractDuration } from './gfs.ts';
import { type FolderDecision, type RetentionPlan, type RetentionRequest, walSegmentGoes } from './plan.ts';

export interface Deleted {
  backups: number;
  /** Backup folders removed: the deleted backups', and leftovers. */
  folders: number;
  dumpSets: number;
  /** Dump set folders removed: the deleted sets', and leftovers. */
  dumpFolders: number;
  walFiles: number;
  drillReports: number;
  objects: number;
  bytes: number;
}

/**
 * Keys per deleteMany() call: two requests' worth (S3's DeleteObjects takes
 * 1,000), so the next batch is listed while one is deleted. Each key in
 * flight costs memory: a confirmed delete on 200,000 WAL objects peaked at
 * 189 MB of RSS with batches of 4,000 and 169 MB with 2,000, in about the
 * same time (scripts/bench/README.md, retention).
 */
const DELETE_BATCH = 2000;
/** Records written, and backup folders emptied, at once. */
const RECORD_CONCURRENCY = 8;
const FOLDER_CONCURRENCY = 4;

/** Where the sets of one kind live: backups or dump sets. */
interface SetLayout {
  prefix: string;
  sentinelKey(name: string): string;
  folderPrefix(name: string): string;
  /** The set an object under `prefix` belongs to, if it is one of a set's objects (not its sentinel). */
  setOf(key: string): string | undefined;
  deleteFolder(storage: Storage, name: string): Promise<{ objects: number; bytes: number }>;
}

const BACKUP_LAYOUT: SetLayout = {
  prefix: BACKUP_PREFIX,
  sentinelKey,
  folderPrefix: backupPrefix,
  setOf: (key) => {
    const kind = classifyKey(key);
    return kind.kind === 'backup-object' ? kind.backup : undefined;
  },
  deleteFolder: deleteBackupObjects,
};

const DUMP_LAYOUT: SetLayout = {
  prefix: DUMP_PREFIX,
  sentinelKey: dumpSentinelKey,
  folderPrefix: dumpPrefix,
  setOf: (key) => {
    const kind = classifyKey(key);
    return kind.kind === 'dump-object' ? kind.dump : undefined;
  },
  deleteFolder: deleteDumpObjects,
};

export async function executePlan(
  storage: Storage,
  plan: RetentionPlan,
  request: RetentionRequest,
  context: { now: number; segmentSize: number; onDeleted(objects: number, bytes: number): void },
): Promise<Deleted> {
  const deleted: Deleted = { backups: 0, folders: 0, dumpSets: 0, dumpFolders: 0, walFiles: 0, drillReports: 0, objects: 0, bytes: 0 };
  const count = (objects: number, bytes: number) => {
    deleted.objects += objects;
    deleted.bytes += bytes;
    context.onDeleted(objects, bytes);
  };
  const sets = { request, now: context.now, count };

  const backups = plan.backups.filter((decision) => decision.action === 'delete').map((decision) => decision.backup.BackupName);
  const dumps = plan.dumpSets.filter((decision) => decision.action === 'delete').map((decision) => decision.dump.DumpName);
  const removedBackups = await deleteSets(storage, BACKUP_LAYOUT, backups, plan.folders, sets);
  const removedDumps = await deleteSets(storage, DUMP_LAYOUT, dumps, plan.dumpFolders, sets);
  Object.assign(deleted, { backups: backups.length, folders: removedBackups.folders, dumpSets: dumps.length, dumpFolders: removedDumps.folders });
  await storage.deleteMany([...new Set([...removedBackups.begun, ...removedDumps.begun, ...plan.finishedDeletionRecords, ...plan.staleDeletionRecords])].map(deletionRecordKey));
  await storage.deleteMany(plan.drillReports.map((report) => report.key));
  deleted.drillReports = plan.drillReports.length;
  count(plan.drillReports.length, 0);

  if (plan.wal.everything || plan.wal.deletions.length > 0 || plan.wal.otherFiles > 0) {
    deleted.walFiles = await deleteListed(storage, WAL_PREFIX, (key) => {
      const kind = classifyKey(key);
      if (kind.kind !== 'wal') return false;
      const { file } = kind;
      return file.segment === undefined ? plan.wal.everything : walSegmentGoes(plan.wal, file.timeline, segmentNumberOfName(file.segment, context.segmentSize));
    }, count);
  }
  return deleted;
}

/**
 * Steps 1 and 2 for one kind of set: records, sentinels, then the folders
 * of the deleted sets and of deletions begun earlier (from one listing), and
 * the incomplete folders old enough to go. Returns the names whose records
 * may now go, and how many folders were removed.
 */
async function deleteSets(
  storage: Storage,
  layout: SetLayout,
  names: readonly string[],
  folders: readonly FolderDecision[],
  context: { request: RetentionRequest; now: number; count(objects: number, bytes: number): void },
): Promise<{ begun: Set<string>; folders: number }> {
  const record = (name: string) => Readable.from([Buffer.from(`${JSON.stringify({ Name: name, Began: new Date(context.now).toISOString() })}\n`)]);
  await forEachConcurrently(names, RECORD_CONCURRENCY, (name) => storage.put(deletionRecordKey(name), record(name)));
  await storage.deleteMany(names.map(layout.sentinelKey));
  context.count(names.length, 0);

  const begun = new Set([...names, ...folders.filter((folder) => folder.deletionBegun).map((folder) => folder.name)]);
  const foldersSeen = new Set<string>();
  if (begun.size > 0) {
    await deleteListed(storage, layout.prefix, (key) => {
      const name = layout.setOf(key);
      if (name === undefined || !begun.has(name)) return false;
      foldersSeen.add(name);
      return true;
    }, context.count);
  }
  // An incomplete folder goes only if it is still one, and still old: a push may have resumed or finished since the listing.
  const youngerThan = subtractDuration(context.now, context.request.incompleteAge);
  const incomplete = folders.filter((folder) => folder.action === 'delete' && !folder.deletionBegun).map((folder) => folder.name);
  await forEachConcurrently(incomplete, FOLDER_CONCURRENCY, async (name) => {
    if ((await storage.head(layout.sentinelKey(name))) || (await hasObjectSince(storage, layout.folderPrefix(name), youngerThan))) return;
    const removed = await layout.deleteFolder(storage, name);
    context.count(removed.objects, removed.bytes);
    foldersSeen.add(name);
  });
  return { begun, folders: foldersSeen.size };
}

async function hasObjectSince(storage: Storage, folder: string, since: number): Promise<boolean> {
  for await (const object of storage.list(folder)) if (object.lastModified.getTime() > since) return true;
  return false;
}

/**
 * Streams the listing of `prefix` and deletes the keys `selected` picks, in
 * batches, one batch in flight while the next is listed; returns how many.
 * After a failure no new batch starts.
 */
async function deleteListed(storage: Storage, prefix: string, selected: (key: string) => boolean, count: (objects: number, bytes: number) => void): Promise<number> {
  let deleted = 0;
  let failure: { error: unknown } | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const flush = async (batch: { keys: string[]; bytes: number }) => {
    await inFlight;
    if (failure) throw failure.error;
    inFlight = storage.deleteMany(batch.keys).then(
      () => {
        deleted += batch.keys.length;
        count(batch.keys.length, batch.bytes);
      },
      (error: unknown) => void (failure ??= { error }),
    );
  };
  let batch = { keys: [] as string[], bytes: 0 };
  for await (const object of storage.list(prefix)) {
    if (!selected(object.key)) continue;
    batch.keys.push(object.key);
    batch.bytes += object.size;
    if (batch.keys.length === DELETE_BATCH) {
      await flush(batch);
      batch = { keys: [], bytes: 0 };
    }
  }
  await flush(batch);
  await inFlight;
  if (failure) throw failure.error;
  return deleted;
}
