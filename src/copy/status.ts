/**
 * How each copy stands against the main storage, for `walship status`: is
 * it reachable, what is the newest backup and WAL it holds, how far it lags
 * (backups and WAL files missing, and for how long the oldest of them has
 * waited), and whether the archive keeps 3-2-1: at least two storages hold
 * the newest backup and the WAL since it, one of them off the database
 * host's file systems (a cloud store, not a file storage, which even on a
 * NAS is mounted on the host).
 *
 * One listing of each side's basebackups_005/ (the catalog; status passes
 * the main storage's own) and one of each
 * side's wal_005/, joined as they come: memory does not grow with the archive.
 */
import { readAttemptRecord } from '../archive/attempts.ts';
import { ArchiveCatalog } from '../archive/catalog.ts';
import { joinWal } from '../archive/difference.ts';
import { describeError, WalshipError } from '../errors.ts';
import { parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { segmentNumberOfName } from '../postgres/wal-name.ts';
import type { Storage } from '../storage/storage.ts';

export interface CopyTargetToCheck {
  /** The copy's config file, which names it. */
  path: string;
  open(): Promise<Storage>;
  /** From its configuration alone: a cloud store, not a file storage (throws when the configuration is bad). */
  isOffHost(): boolean;
}

export interface CopyState {
  copy: string;
  location?: string;
  reachable: boolean;
  /** Why it could not be listed. */
  error?: string;
  /** Not on the database host's file systems (a cloud store). */
  offHost?: boolean;
  newestBackup?: { name: string; finishTime: string };
  newestWal?: { name: string; stored: string };
  /** What the main storage holds and the copy lacks. */
  missing?: { backups: number; walFiles: number; bytes: number };
  /** How long the oldest thing the copy lacks has been in the main storage: 0 when it lacks nothing. */
  lagSeconds?: number;
  /** It holds the main storage's newest backup and the WAL since it (but what arrived within the lag allowed). */
  holdsNewestBackupAndWal?: boolean;
  /**
   * Unreachable: when the last copy job that brought it fully up to date
   * started (from the main storage's attempt records). It lacks nothing older,
   * so its lag is at most the time since.
   */
  upToDateAt?: string;
}

export interface CopiesStatus {
  main: { location: string; offHost: boolean; newestBackup?: { name: string; finishTime: string } };
  copies: CopyState[];
  /** 3-2-1: at least two storages hold the newest backup and the WAL since it, one of them off the host. */
  threeTwoOne: { holds: boolean; storages: string[]; reason: string };
}

export interface CopiesStatusOptions {
  /** WAL and backups younger than this do not count against 3-2-1 yet (status's --max-copy-lag). */
  maxLagMs: number;
  now?: number;
  /** How long one copy may take to answer before it counts as unreachable. */
  timeoutMs?: number;
  /** The main storage's catalog when the caller has one (status does): not listed again. */
  mainCatalog?: ArchiveCatalog;
}

/** A copy that does not answer in this time is unreachable: status must end in bounded time. */
const COPY_TIMEOUT_MS = 30_000;

class CopyTimeoutError extends WalshipError {}

async function withinTime<T>(work: () => Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CopyTimeoutError(`no answer within ${timeoutMs / 1000}s`)), timeoutMs);
  });
  try {
    return await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function copiesStatus(main: Storage, copies: CopyTargetToCheck[], options: CopiesStatusOptions): Promise<CopiesStatus> {
  const now = options.now ?? Date.now();
  const mainCatalog = options.mainCatalog ?? (await ArchiveCatalog.load(main, { wal: false, records: true }));
  const newest = mainCatalog.backups().at(-1);
  const newestBackup = newest && { name: newest.BackupName, finishTime: newest.FinishTime };
  const segmentSize = newest?.WalSegmentSize ?? mainCatalog.segmentSize;
  const newestStart = newest ? segmentNumberOfLsn(parseLsn(newest.LSN), segmentSize) : undefined;
  // All copies at once: status's time is bounded by one copy's timeout, not by their sum.
  const states = await Promise.all(copies.map(async (copy): Promise<CopyState> => {
    try {
      return await withinTime(async () => stateOf(copy.path, main, await copy.open(), mainCatalog, { newestBackup, newestStart, segmentSize, now, maxLagMs: options.maxLagMs }), options.timeoutMs ?? COPY_TIMEOUT_MS);
    } catch (error) {
      if (!(error instanceof WalshipError)) throw error;
      return { copy: copy.path, reachable: false, error: describeError(error) };
    }
  }));
  const unreachable = states.filter((state) => !state.reachable);
  const upToDate = unreachable.length > 0 ? await lastCompleteCopies(main, mainCatalog, new Set(unreachable.map((state) => state.copy))) : new Map<string, Date>();
  for (const state of unreachable) {
    const at = upToDate.get(state.copy);
    if (!at) continue;
    state.upToDateAt = at.toISOString();
    state.lagSeconds = Math.max(0, Math.round((now - at.getTime()) / 1000));
    state.offHost = offHostFromConfiguration(copies.find((copy) => copy.path === state.copy)!);
    // It held the newest backup and every WAL file then; what arrived since is within the lag allowed, or it is not.
    state.holdsNewestBackupAndWal = newestBackup !== undefined && Date.parse(newestBackup.finishTime) <= at.getTime() && now - at.getTime() <= options.maxLagMs;
  }
  const mainOffHost = !main.capabilities.localFileSystem;
  const holders = [
    ...(newestBackup ? [{ location: main.location, offHost: mainOffHost }] : []),
    ...states.filter((state) => state.holdsNewestBackupAndWal).map((state) => ({ location: state.location ?? state.copy, offHost: state.offHost === true })),
  ];
  const holds = holders.length >= 2 && holders.some((holder) => holder.offHost);
  const reason = !newestBackup
    ? 'the main storage holds no complete backup'
    : holders.length < 2
      ? 'no copy holds the newest backup and the WAL since it'
      : holds
        ? `${holders.length} storages hold the newest backup, ${newestBackup.name}, and the WAL since it, ${holders.filter((holder) => holder.offHost).length} of them off the host`
        : 'every storage that holds the newest backup and the WAL since it is a file storage on the database host';
  return {
    main: { location: main.location, offHost: mainOffHost, newestBackup },
    copies: states,
    threeTwoOne: { holds, storages: holders.map((holder) => holder.location), reason },
  };
}

/** How many copy jobs back status looks for the last one that completed each unreachable copy. */
const COPY_ATTEMPTS_READ = 20;

/** For each of `paths`, when the newest recorded copy job that brought it fully up to date started. */
async function lastCompleteCopies(main: Storage, catalog: ArchiveCatalog, paths: Set<string>): Promise<Map<string, Date>> {
  const found = new Map<string, Date>();
  const ended = catalog.attempts().filter((attempt) => attempt.job === 'copy' && attempt.ended).slice(-COPY_ATTEMPTS_READ).reverse();
  for (const attempt of ended) {
    if (found.size === paths.size) break;
    let record;
    try {
      record = await readAttemptRecord(main, attempt.ended!.key);
    } catch (error) {
      if (error instanceof SyntaxError || error instanceof WalshipError) continue; // damaged or gone: an older one may tell
      throw error;
    }
    for (const path of record.up_to_date ?? []) if (paths.has(path) && !found.has(path)) found.set(path, attempt.started);
  }
  return found;
}

function offHostFromConfiguration(copy: CopyTargetToCheck): boolean | undefined {
  try {
    return copy.isOffHost();
  } catch {
    return undefined; // a bad configuration: the copy's error already says so
  }
}

async function stateOf(
  path: string,
  main: Storage,
  copy: Storage,
  mainCatalog: ArchiveCatalog,
  context: { newestBackup: { name: string } | undefined; newestStart: bigint | undefined; segmentSize: number; now: number; maxLagMs: number },
): Promise<CopyState> {
  const copyCatalog = await ArchiveCatalog.load(copy, { wal: false });
  const held = copyCatalog.sentinelDocuments();
  const copyNewest = copyCatalog.backups().at(-1);
  let oldestMissing = Infinity;
  const missing = { backups: 0, walFiles: 0, bytes: 0 };
  for (const backup of mainCatalog.backups()) {
    if (held.has(backup.BackupName)) continue;
    missing.backups++;
    oldestMissing = Math.min(oldestMissing, Date.parse(backup.FinishTime));
  }
  let walSinceNewestHeld = true;
  let newestWal: { name: string; stored: string } | undefined;
  for await (const group of joinWal(main, copy)) {
    const names = new Set(group.target.map((object) => object.file.name));
    for (const object of group.target) {
      if (object.file.kind === 'segment' && (!newestWal || object.file.name.slice(8) >= newestWal.name.slice(8))) newestWal = { name: object.file.name, stored: object.lastModified.toISOString() };
    }
    for (const object of group.source) {
      if (names.has(object.file.name)) continue;
      missing.walFiles++;
      missing.bytes += object.size;
      const stored = object.lastModified.getTime();
      oldestMissing = Math.min(oldestMissing, stored);
      if (context.now - stored > context.maxLagMs && object.file.kind !== 'history' && sinceNewestBackup(object.file.segment!, context)) walSinceNewestHeld = false;
    }
  }
  return {
    copy: path,
    location: copy.location,
    reachable: true,
    offHost: !copy.capabilities.localFileSystem,
    newestBackup: copyNewest && { name: copyNewest.BackupName, finishTime: copyNewest.FinishTime },
    newestWal,
    missing,
    lagSeconds: oldestMissing === Infinity ? 0 : Math.max(0, Math.round(context.now - oldestMissing) / 1000),
    holdsNewestBackupAndWal: context.newestBackup !== undefined && held.has(context.newestBackup.name) && walSinceNewestHeld,
  };
}

function sinceNewestBackup(segment: string, context: { newestStart: bigint | undefined; segmentSize: number }): boolean {
  if (context.newestStart === undefined) return false;
  try {
    return segmentNumberOfName(segment, context.segmentSize) >= context.newestStart;
  } catch {
    return false; // not a segment with this segment size
  }
}
