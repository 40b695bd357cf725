/**
 * How each copy stands against the main storage, for `walship status`: is
 * it reachable, what is the newest backup and WAL it holds, how far it lags
 * (backups and WAL files missing, and for how long the oldest of them has
 * waited), and whether the archive keeps 3-2-1: at least two storages hold
 * the newest backup and the WAL since it, one of them off the database
 * host's file systems (a cloud store, not a file storage, which even on a
 * NAS is mounted on the host).
 *
 * One listing of each side's basebackups_005/ (the catalog) and one of each
 * side's wal_005/, joined as they come: memory does not grow with the archive.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { joinWal } from '../archive/difference.ts';
import { describeError, WalshipError } from '../errors.ts';
import { parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { segmentNumberOfName } from '../postgres/wal-name.ts';
import type { CheckState, Finding } from '../checks/verdict.ts';
import { formatDuration } from '../progress/progress.ts';
import type { Storage } from '../storage/storage.ts';

export interface CopyTargetToCheck {
  /** The copy's config file, which names it. */
  path: string;
  open(): Promise<Storage>;
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
}

export async function copiesStatus(main: Storage, copies: CopyTargetToCheck[], options: CopiesStatusOptions): Promise<CopiesStatus> {
  const now = options.now ?? Date.now();
  const mainCatalog = await ArchiveCatalog.load(main, { wal: false });
  const newest = mainCatalog.backups().at(-1);
  const newestBackup = newest && { name: newest.BackupName, finishTime: newest.FinishTime };
  const segmentSize = newest?.WalSegmentSize ?? mainCatalog.segmentSize;
  const newestStart = newest ? segmentNumberOfLsn(parseLsn(newest.LSN), segmentSize) : undefined;
  const states: CopyState[] = [];
  for (const copy of copies) {
    try {
      const storage = await copy.open();
      states.push(await stateOf(copy.path, main, storage, mainCatalog, { newestBackup, newestStart, segmentSize, now, maxLagMs: options.maxLagMs }));
    } catch (error) {
      if (!(error instanceof WalshipError)) throw error;
      states.push({ copy: copy.path, reachable: false, error: describeError(error) });
    }
  }
  const mainOffHost = !main.capabilities.localFileSystem;
  const holders = [
    ...(newestBackup ? [{ location: main.location, offHost: mainOffHost }] : []),
    ...states.filter((state) => state.holdsNewestBackupAndWal).map((state) => ({ location: state.location!, offHost: state.offHost! })),
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

/**
 * What status makes of the copies: a copy that lags by more than `maxLagMs`
 * is a WARNING, by more than four times it CRITICAL; one that cannot be
 * listed is a WARNING (its lag is unknown); 3-2-1 not kept is a WARNING.
 */
export function copyFindings(status: CopiesStatus, maxLagMs: number): Finding[] {
  const findings: Finding[] = [];
  for (const copy of status.copies) {
    if (!copy.reachable) {
      findings.push({ state: 'WARNING', message: `copy ${copy.copy} cannot be listed: ${copy.error}` });
      continue;
    }
    const lagMs = copy.lagSeconds! * 1000;
    const state: CheckState = lagMs > 4 * maxLagMs ? 'CRITICAL' : lagMs > maxLagMs ? 'WARNING' : 'OK';
    const { backups, walFiles } = copy.missing!;
    findings.push({
      state,
      message: state === 'OK' && backups + walFiles === 0
        ? `copy ${copy.location} is up to date`
        : `copy ${copy.location} lacks ${backups} backup${backups === 1 ? '' : 's'} and ${walFiles} WAL file${walFiles === 1 ? '' : 's'}, the oldest for ${formatDuration(copy.lagSeconds! * 1000)}`,
    });
  }
  if (status.copies.length > 0) findings.push({ state: status.threeTwoOne.holds ? 'OK' : 'WARNING', message: `3-2-1 ${status.threeTwoOne.holds ? 'holds' : 'does not hold'}: ${status.threeTwoOne.reason}` });
  return findings;
}

/** The Prometheus series for the copies: name, labels and value, for status --prometheus to print. */
export function copyMetrics(status: CopiesStatus): { name: string; help: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; help: string; labels: Record<string, string>; value: number }[] = [];
  for (const copy of status.copies) {
    const labels = { copy: copy.copy };
    samples.push({ name: 'walship_copy_up', help: 'Whether the copy could be listed', labels, value: copy.reachable ? 1 : 0 });
    if (!copy.reachable) continue;
    samples.push(
      { name: 'walship_copy_lag_seconds', help: 'How long the oldest backup or WAL file the copy lacks has been in the main storage', labels, value: copy.lagSeconds! },
      { name: 'walship_copy_missing_backups', help: 'Complete backups of the main storage the copy lacks', labels, value: copy.missing!.backups },
      { name: 'walship_copy_missing_wal_files', help: 'WAL files of the main storage the copy lacks', labels, value: copy.missing!.walFiles },
    );
    if (copy.newestBackup) {
      samples.push({ name: 'walship_copy_newest_backup_timestamp_seconds', help: 'Finish time of the newest backup the copy holds', labels, value: Date.parse(copy.newestBackup.finishTime) / 1000 });
    }
  }
  samples.push({ name: 'walship_three_two_one', help: '1 when two storages hold the newest backup and the WAL since it, one off the host', labels: {}, value: status.threeTwoOne.holds ? 1 : 0 });
  return samples;
}
