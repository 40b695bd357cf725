/**
 * The last attempt of each job cron runs, from the records under
 * walship/attempts/ (archive/attempts.ts): a failed backup-push, dump-push or
 * copy is CRITICAL even while older backups exist; a failed delete or drill
 * attempt is a WARNING (the drill's report says the rest). An attempt that
 * started longer ago than the backup age limit and never ended was killed.
 */
import { ATTEMPT_JOBS, type AttemptRecord, type AttemptRef, readAttemptRecord } from '../archive/attempts.ts';
import type { CheckState, Finding } from '../checks/verdict.ts';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';
import type { Storage } from '../storage/storage.ts';
import { formatAge, formatTime, type MetricSample, seconds, type StatusSection } from './section.ts';

const FAILURE_STATE: Record<(typeof ATTEMPT_JOBS)[number], CheckState> = { 'backup-push': 'CRITICAL', 'dump-push': 'CRITICAL', copy: 'CRITICAL', delete: 'WARNING', drill: 'WARNING' };
/** The names the series take for each job: walship_backup_last_attempt_success and the like. */
const METRIC_NAME: Record<(typeof ATTEMPT_JOBS)[number], string> = { 'backup-push': 'backup', 'dump-push': 'dump', copy: 'copy', delete: 'delete', drill: 'drill' };

interface LastAttempt {
  job: (typeof ATTEMPT_JOBS)[number];
  started: Date;
  result: 'running' | 'success' | 'failure';
  finished?: Date;
  error?: string;
}

export async function attemptsSection(storage: Storage, attempts: readonly AttemptRef[], now: number, unfinishedAfterMs: number): Promise<StatusSection> {
  const last: LastAttempt[] = [];
  for (const job of ATTEMPT_JOBS) {
    const attempt = attempts.filter((candidate) => candidate.job === job).at(-1);
    if (attempt) last.push({ job, started: attempt.started, result: attempt.ended?.result ?? 'running', ...(attempt.ended ? await endOf(storage, attempt.ended.key) : {}) });
  }
  const findings: Finding[] = [];
  const metrics: MetricSample[] = [];
  for (const attempt of last) {
    const name = METRIC_NAME[attempt.job];
    if (attempt.result === 'failure') {
      findings.push({ state: FAILURE_STATE[attempt.job], message: `last ${attempt.job} attempt failed (${formatAge(now - (attempt.finished ?? attempt.started).getTime())} ago)${attempt.error ? `: ${attempt.error}` : ''}` });
    } else if (attempt.result === 'running' && now - attempt.started.getTime() > unfinishedAfterMs) {
      findings.push({ state: FAILURE_STATE[attempt.job], message: `last ${attempt.job} attempt started ${formatAge(now - attempt.started.getTime())} ago and never ended (killed?)` });
    }
    metrics.push({ name: `walship_${name}_last_attempt_timestamp_seconds`, help: `When the last ${attempt.job} attempt started.`, value: seconds(attempt.started) });
    if (attempt.result !== 'running') metrics.push({ name: `walship_${name}_last_attempt_success`, help: `1 if the last finished ${attempt.job} attempt succeeded, 0 if it failed.`, value: attempt.result === 'success' ? 1 : 0 });
  }
  return {
    name: 'attempts',
    figures: Object.fromEntries(last.map((attempt) => [attempt.job, { started_at: attempt.started.toISOString(), finished_at: attempt.finished?.toISOString() ?? null, result: attempt.result, error: attempt.error ?? null }])),
    findings,
    metrics,
    lines: last.length === 0
      ? ['jobs: no attempt recorded yet (backup-push, copy, delete, drill and dump-push record theirs)']
      : last.map((attempt) => `jobs: last ${attempt.job} started ${formatTime(attempt.started)}: ${attempt.result}${attempt.error ? `: ${attempt.error}` : ''}`),
  };
}

/** The end record's finish time and error; a record that cannot be read is a warning, and the key's result stands. */
async function endOf(storage: Storage, key: string): Promise<{ finished?: Date; error?: string }> {
  let record: AttemptRecord;
  try {
    record = await readAttemptRecord(storage, key);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    log.warning(`${key} is damaged (${describeError(error)}): its attempt is shown without its error`);
    return {};
  }
  return { ...(typeof record.finished_at === 'string' ? { finished: new Date(record.finished_at) } : {}), ...(typeof record.error === 'string' ? { error: record.error } : {}) };
}
