/**
 * A drill's report: stored under walship/drills/ (archive/drills.ts), printed
 * whole with --json, and as the verdict line and one line per check otherwise.
 */
import type { DrillReportSummary, DumpDrillSummary } from '../archive/drills.ts';
import { type CheckState, summarize } from '../checks/verdict.ts';
import { formatDuration } from '../progress/progress.ts';

export interface CheckResult {
  name: string;
  state: CheckState;
  seconds: number;
  message: string;
}

export interface DrillReport extends DrillReportSummary {
  summary: string;
  /** The recovery target, or null for the end of the archive. */
  target: string | null;
  started_at: string;
  host: string;
  storage: string;
  walship_version: string;
  postgres_version: string | null;
  /** Download, verification and extraction of the backup's files. */
  restore_seconds: number | null;
  /** Server start to ready: replay of the WAL and promotion. */
  replay_seconds: number | null;
  segments_replayed: number;
  checks_seconds: number;
  recovery_timeline: number | null;
  recovery_end_lsn: string | null;
  /** The last segment recovery could reach in the archive without a gap, and the first missing one before the archive's end. */
  archive_reach_segment: string | null;
  first_missing_segment: string | null;
  /** The last replayed transaction's commit time, and its age when the drill finished. */
  recovery_point: string | null;
  data_age_seconds: number | null;
  data_checksums: boolean | null;
  checks: CheckResult[];
}

export const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

/** The verdict over the checks: OK names the RTO and the recovery point. */
export function drillVerdict(report: Omit<DrillReport, 'result' | 'summary'>): { state: CheckState; summary: string } {
  const findings = report.checks.map((check) => ({ state: check.state, message: `${check.name}: ${check.message}` }));
  const recoveryPoint = report.recovery_point
    ? `recovery point ${report.recovery_point} (data age ${formatDuration((report.data_age_seconds ?? 0) * 1000)})`
    : 'no transaction replayed after the backup';
  const ok = `drill of ${report.backup} passed ${report.checks.length} checks: RTO ${formatDuration((report.rto_seconds ?? 0) * 1000)}, ${recoveryPoint}`;
  return summarize(findings, ok);
}

/** The lines after the verdict, for people. */
export function drillDetails(report: DrillReport & { report_key?: string }): string[] {
  const seconds = (value: number | null) => (value === null ? '-' : formatDuration(value * 1000));
  const width = Math.max(...report.checks.map((check) => check.name.length));
  return [
    `backup ${report.backup}, recovered to ${report.target ?? 'the end of the archive'}`,
    ...report.checks.map((check) => `  ${check.name.padEnd(width)}  ${check.state.padEnd(8)} ${seconds(check.seconds).padStart(7)}  ${check.message}`),
    `RTO ${seconds(report.rto_seconds)} (restore ${seconds(report.restore_seconds)}, replay of ${report.segments_replayed} segments ${seconds(report.replay_seconds)}); checks ${seconds(report.checks_seconds)}`,
    report.recovery_point
      ? `recovery point ${report.recovery_point} (the last transaction replayed), data age ${seconds(report.data_age_seconds)}`
      : 'recovery point: no transaction was replayed after the backup',
    report.report_key ? `report stored as ${report.report_key}` : 'no report stored',
  ];
}

/** A dump drill's report (`drill --dump`): the dump set restored into a new cluster, then the same checks. */
export interface DumpDrillReport extends DumpDrillSummary {
  summary: string;
  started_at: string;
  host: string;
  storage: string;
  walship_version: string;
  postgres_version: string | null;
  /** The databases of the dump set, each restored. */
  databases: string[];
  /** initdb and start of the scratch server. */
  server_seconds: number | null;
  /** The globals and every database restored. */
  restore_seconds: number | null;
  checks_seconds: number;
  /** The oldest snapshot of the set's databases (the data is as of then), and its age when the drill finished. */
  snapshot_time: string;
  data_age_seconds: number;
  data_checksums: boolean;
  checks: CheckResult[];
}

export function dumpDrillVerdict(report: Omit<DumpDrillReport, 'result' | 'summary'>): { state: CheckState; summary: string } {
  const findings = report.checks.map((check) => ({ state: check.state, message: `${check.name}: ${check.message}` }));
  const ok = `dump drill of ${report.dump} passed ${report.checks.length} checks: ${report.databases.length} databases restored in ` +
    `${formatDuration((report.rto_seconds ?? 0) * 1000)}, snapshot ${report.snapshot_time} (data age ${formatDuration(report.data_age_seconds * 1000)})`;
  return summarize(findings, ok);
}

export function dumpDrillDetails(report: DumpDrillReport & { report_key?: string }): string[] {
  const seconds = (value: number | null) => (value === null ? '-' : formatDuration(value * 1000));
  const width = Math.max(...report.checks.map((check) => check.name.length));
  return [
    `dump set ${report.dump} (${report.databases.join(', ')}), restored into a new cluster`,
    ...report.checks.map((check) => `  ${check.name.padEnd(width)}  ${check.state.padEnd(8)} ${seconds(check.seconds).padStart(7)}  ${check.message}`),
    `restored in ${seconds(report.rto_seconds)} (new server ${seconds(report.server_seconds)}, globals and databases ${seconds(report.restore_seconds)}); checks ${seconds(report.checks_seconds)}`,
    report.report_key ? `report stored as ${report.report_key}` : 'no report stored',
  ];
}
