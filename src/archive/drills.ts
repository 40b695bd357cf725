/**
 * Restore drill reports, stored outside WAL-G's folders as small JSON objects
 * (keys in layout.ts), one per drill, named by time and backup. A report
 * outlives its backup for DRILL_REPORT_RETENTION_DAYS, so the last drills stay
 * visible after retention has deleted the backups they proved.
 */
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { IntegrityError } from '../errors.ts';
import { log } from '../log/logger.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { DRILL_REPORT_PREFIX, drillReportKey, parseDrillReportKey, parseDumpDrillReportKey } from './layout.ts';

/** A stored report, as the key names it. */
export interface DrillReportRef {
  key: string;
  backup: string;
  /** When the drill finished. */
  time: Date;
}

/** What every drill report holds, and what backup-list shows of it; the drill stores more. */
export interface DrillReportSummary {
  backup: string;
  finished_at: string;
  /** The drill's verdict: OK, WARNING, CRITICAL or UNKNOWN. */
  result: string;
  /** Backup chosen to server ready; null when the server never became ready. */
  rto_seconds: number | null;
}

/** What every dump drill report (`drill --dump`) holds, and what dump-list shows of it; the drill stores more. */
export interface DumpDrillSummary {
  /** A dump drill's report says so: its keys and fields never pass for a backup's. */
  kind: 'dump';
  dump: string;
  finished_at: string;
  result: string;
  /** Dump set chosen to every database restored; null when the restore failed. */
  rto_seconds: number | null;
}

/** Days a report is kept once its backup is gone, counted from the drill. */
export const DRILL_REPORT_RETENTION_DAYS = 90;
const DAY_MS = 86_400_000;
/** Reports are read a few at a time. */
const READ_CONCURRENCY = 8;

/** Stores `report` (create-only) under a key of its backup and finish time; returns the key. */
export async function storeDrillReport(storage: Storage, report: DrillReportSummary): Promise<string> {
  return storeReport(storage, drillReportKey(report.backup, new Date(report.finished_at)), report);
}

/** Stores a dump drill's report (create-only) under a key of its dump set and finish time; returns the key. */
export async function storeDumpDrillReport(storage: Storage, report: DumpDrillSummary): Promise<string> {
  return storeReport(storage, drillReportKey(report.dump, new Date(report.finished_at)), report);
}

async function storeReport(storage: Storage, key: string, report: object): Promise<string> {
  await storage.put(key, Readable.from([Buffer.from(`${JSON.stringify(report, null, 2)}\n`)]), { createOnly: true });
  return key;
}

/** Every stored report, oldest first. */
export async function listDrillReports(storage: Storage): Promise<DrillReportRef[]> {
  const reports: DrillReportRef[] = [];
  for await (const object of storage.list(DRILL_REPORT_PREFIX)) {
    const parsed = parseDrillReportKey(object.key);
    if (parsed) reports.push({ key: object.key, ...parsed });
  }
  return reports.sort(byTime);
}

export async function readDrillReport(storage: Storage, key: string): Promise<DrillReportSummary> {
  const content = await text((await storage.get(key)).body);
  let report: Partial<DrillReportSummary> | undefined;
  try {
    report = JSON.parse(content) as Partial<DrillReportSummary>;
  } catch {
    // reported below
  }
  if (typeof report?.backup !== 'string' || typeof report.finished_at !== 'string' || typeof report.result !== 'string') {
    throw new IntegrityError(`${key} is not a walship drill report: it is damaged`);
  }
  return { backup: report.backup, finished_at: report.finished_at, result: report.result, rto_seconds: typeof report.rto_seconds === 'number' ? report.rto_seconds : null };
}

/**
 * The newest report of each backup that has one, read from storage, with its
 * key. A damaged report is skipped with a warning naming it: it must not hide
 * the backups from a listing.
 */
export async function lastDrills(storage: Storage): Promise<Map<string, DrillReportSummary & { report: string }>> {
  const newest = new Map<string, DrillReportRef>();
  for (const report of await listDrillReports(storage)) newest.set(report.backup, report);
  const summaries = new Map<string, DrillReportSummary & { report: string }>();
  await forEachConcurrently(newest.values(), READ_CONCURRENCY, async ({ key, backup }) => {
    try {
      summaries.set(backup, { ...(await readDrillReport(storage, key)), report: key });
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      log.warning(`${error.message}: ${backup} is shown without its last drill; delete the report or drill the backup again`);
    }
  });
  return summaries;
}

/** The newest dump drill report of each dump set that has one, with its key; a damaged one is skipped with a warning. */
export async function lastDumpDrills(storage: Storage): Promise<Map<string, DumpDrillSummary & { report: string }>> {
  const newest = new Map<string, { key: string; time: Date }>();
  for await (const object of storage.list(DRILL_REPORT_PREFIX)) {
    const parsed = parseDumpDrillReportKey(object.key);
    const known = parsed && newest.get(parsed.dump);
    if (parsed && (!known || known.time <= parsed.time)) newest.set(parsed.dump, { key: object.key, time: parsed.time });
  }
  const summaries = new Map<string, DumpDrillSummary & { report: string }>();
  await forEachConcurrently(newest, READ_CONCURRENCY, async ([dump, { key }]) => {
    let report: Partial<DumpDrillSummary> | undefined;
    try {
      report = JSON.parse(await text((await storage.get(key)).body)) as Partial<DumpDrillSummary>;
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
    }
    if (report?.kind !== 'dump' || typeof report.finished_at !== 'string' || typeof report.result !== 'string') {
      log.warning(`${key} is not a walship dump drill report: it is damaged; ${dump} is shown without its last drill`);
      return;
    }
    summaries.set(dump, { kind: 'dump', dump, finished_at: report.finished_at, result: report.result, rto_seconds: typeof report.rto_seconds === 'number' ? report.rto_seconds : null, report: key });
  });
  return summaries;
}

/**
 * The reports retention may delete: those of backups no longer in
 * `existingBackups` that are older than DRILL_REPORT_RETENTION_DAYS, except
 * the newest report of all, which always says when the last drill ran.
 */
export function drillReportsToPrune(reports: readonly DrillReportRef[], existingBackups: ReadonlySet<string>, now = new Date()): DrillReportRef[] {
  const newest = [...reports].sort(byTime).at(-1);
  const cutoff = now.getTime() - DRILL_REPORT_RETENTION_DAYS * DAY_MS;
  return reports.filter((report) => report !== newest && !existingBackups.has(report.backup) && report.time.getTime() < cutoff);
}

function byTime(a: DrillReportRef, b: DrillReportRef): number {
  return a.time.getTime() - b.time.getTime() || a.key.localeCompare(b.key);
}
