/**
 * Restore drills, from the reports under walship/drills/ (the catalog's
 * listing names them; only the newest is read): the last drill, its result,
 * RTO and age against --max-drill-age, and whether the newest backup was
 * ever drilled. No drill at all, or an undrilled newest backup, is a
 * WARNING: an untested backup is not yet a backup.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import { readDrillReport } from '../archive/drills.ts';
import type { Finding } from '../checks/verdict.ts';
import { IntegrityError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';
import { formatAge, formatTime, type MetricSample, type StatusSection } from './section.ts';

export async function drillsSection(storage: Storage, catalog: ArchiveCatalog, now: number, maxAgeMs: number): Promise<StatusSection> {
  const reports = catalog.drillReports();
  const last = [...reports].sort((a, b) => a.time.getTime() - b.time.getTime()).at(-1);
  const newestBackup = catalog.backups().at(-1);
  const findings: Finding[] = [];
  const metrics: MetricSample[] = [];
  if (!last) {
    findings.push({ state: 'WARNING', message: 'no restore drill yet: run walship drill' });
    return { name: 'drills', figures: { last: null, newest_backup_drilled: false }, findings, metrics, lines: ['drills: none yet'] };
  }
  let result: string;
  let rtoSeconds: number | null = null;
  try {
    const report = await readDrillReport(storage, last.key);
    result = report.result;
    rtoSeconds = report.rto_seconds;
  } catch (error) {
    if (!(error instanceof IntegrityError)) throw error;
    result = 'UNKNOWN';
    findings.push({ state: 'WARNING', message: error.message });
  }
  const age = now - last.time.getTime();
  if (result !== 'OK') findings.push({ state: 'CRITICAL', message: `last drill (${last.backup}, ${formatAge(age)} ago) was ${result}` });
  if (age > maxAgeMs) findings.push({ state: 'CRITICAL', message: `last drill was ${formatAge(age)} ago (limit ${formatAge(maxAgeMs)})` });
  const newestDrilled = newestBackup !== undefined && reports.some((report) => report.backup === newestBackup.BackupName);
  if (newestBackup && !newestDrilled) findings.push({ state: 'WARNING', message: `newest backup ${newestBackup.BackupName} was never drilled` });
  metrics.push(
    { name: 'walship_drill_last_timestamp_seconds', help: 'When the last restore drill finished.', value: last.time.getTime() / 1000 },
    { name: 'walship_drill_last_success', help: '1 if the last restore drill was OK, 0 otherwise.', value: result === 'OK' ? 1 : 0 },
  );
  if (rtoSeconds !== null) metrics.push({ name: 'walship_drill_last_rto_seconds', help: "The last drill's recovery time: backup chosen to server ready.", value: rtoSeconds });
  return {
    name: 'drills',
    figures: { last: { backup: last.backup, finished_at: last.time.toISOString(), result, rto_seconds: rtoSeconds, age_seconds: Math.round(age / 1000) }, newest_backup_drilled: newestDrilled },
    findings,
    metrics,
    lines: [`drills: last ${formatTime(last.time)} of ${last.backup}: ${result}${rtoSeconds === null ? '' : `, RTO ${rtoSeconds} s`}; the newest backup ${newestDrilled ? 'was drilled' : 'was never drilled'}`],
  };
}
