/**
 * `walship status`: are my backups OK? One listing of the archive (the
 * catalog, dump sets and walship's records with it) and, when the libpq
 * settings reach a server, one query of its archiver serve every section:
 * backups, the last attempt of each job, the recovery window and its gaps,
 * drills, the archiver, dumps, storage use and the copies (each listed
 * on its own, all at once). Each section gives its
 * findings; the worst is the verdict (checks/verdict.ts), and every
 * section's series go to Prometheus.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import type { IntegrityWindows } from '../archive/wal-integrity.ts';
import { CHECK_EXIT_CODES, type CheckResult, summarize } from '../checks/verdict.ts';
import { describeError } from '../errors.ts';
import { queryArchiver } from '../postgres/archiver.ts';
import type { RetentionRequest } from '../retention/plan.ts';
import type { CopyTargetToCheck } from '../copy/status.ts';
import type { Storage } from '../storage/storage.ts';
import { type ServerAnswer, archiverSection } from './archiver.ts';
import { attemptsSection } from './attempts.ts';
import { backupsSection } from './backups.ts';
import { copiesSection } from './copies.ts';
import { drillsSection } from './drills.ts';
import { dumpsSection } from './dumps.ts';
import { recoverySection } from './recovery.ts';
import { formatAge, type MetricSample, type StatusSection } from './section.ts';
import { storageSection } from './storage-use.ts';
import type { StatusThresholds } from './thresholds.ts';

/** How to reach the server: psql and the libpq environment, or why there is no way. */
export type ServerAccess = { psql: string; env: NodeJS.ProcessEnv } | { unavailable: string };

export interface StatusRequest {
  storage: Storage;
  server: ServerAccess;
  thresholds: StatusThresholds;
  windows: IntegrityWindows;
  /** The retention policy the settings configure, if any. */
  retention: RetentionRequest | undefined;
  /** The copies WALSHIP_COPIES names (none: no copies section). */
  copies?: CopyTargetToCheck[];
  now?: number;
}

export interface StatusReport {
  result: CheckResult;
  /** Every section's series, walship_status (the exit code) among them. */
  metrics: MetricSample[];
}

const SERVER_TIMEOUT_MS = 30_000;

export async function walshipStatus(request: StatusRequest): Promise<StatusReport> {
  const { storage, thresholds } = request;
  const [catalog, server] = await Promise.all([ArchiveCatalog.load(storage, { dumps: true }), askServer(request.server)]);
  const now = request.now ?? Date.now();
  const sections = [
    backupsSection(catalog, now, thresholds.maxBackupAgeMs, storage.encryption !== undefined),
    await attemptsSection(storage, catalog.attempts(), now, thresholds.maxBackupAgeMs),
    recoverySection(catalog, 'state' in server ? server.state : undefined, request.windows),
    await drillsSection(storage, catalog, now, thresholds.maxDrillAgeMs),
    archiverSection(catalog, server, now, thresholds.maxArchiveLagMs),
    dumpsSection(catalog, now, thresholds.maxDumpAgeMs, thresholds.dumpAgeAsked),
    storageSection(catalog, storage.location, request.retention, now),
    await copiesSection(storage, catalog, request.copies ?? [], now, thresholds.maxCopyLagMs),
  ].filter((section): section is StatusSection => section !== undefined);
  const findings = sections.flatMap((section) => section.findings);
  const { state, summary } = summarize(findings, okSummary(catalog, now));
  const metrics = [...statusMetrics(CHECK_EXIT_CODES[state], now), ...sections.flatMap((section) => section.metrics)];
  return {
    result: {
      state,
      summary,
      details: sections.flatMap((section) => section.lines),
      json: { status: state, summary, checked_at: new Date(now).toISOString(), findings, ...Object.fromEntries(sections.map((section) => [section.name, section.figures])) },
    },
    metrics,
  };
}

/** walship_status (the exit code) and when it was found: a stale textfile shows in its age. */
export function statusMetrics(exitCode: number, now: number): MetricSample[] {
  return [
    { name: 'walship_status', help: "walship status's verdict as its exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (could not check).", value: exitCode },
    { name: 'walship_status_timestamp_seconds', help: 'When walship status ran.', value: now / 1000 },
  ];
}

function okSummary(catalog: ArchiveCatalog, now: number): string {
  const newest = catalog.backups().at(-1);
  const drill = catalog.drillReports().at(-1);
  return [
    newest ? `newest backup ${formatAge(now - Date.parse(newest.FinishTime))} old` : 'no backup',
    `${catalog.backups().length} backups`,
    'no WAL missing',
    drill ? `last drill ${formatAge(now - drill.time.getTime())} ago` : 'no drill',
  ].join(', ');
}

async function askServer(server: ServerAccess): Promise<ServerAnswer> {
  if ('unavailable' in server) return server;
  try {
    return { state: await queryArchiver(server.psql, server.env, SERVER_TIMEOUT_MS) };
  } catch (error) {
    return { unavailable: `no server reached (${describeError(error)})` };
  }
}
