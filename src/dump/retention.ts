/**
 * Dump sets under monitoring: the finding `status` reports for the newest
 * dump set's age. (`delete --dumps` plans and deletes dump sets with the
 * backups' own code, in retention/.)
 */
import type { DumpSentinel } from '../archive/dumps.ts';
import type { Finding } from '../checks/verdict.ts';
import { formatDuration } from '../progress/progress.ts';

/** `status --max-dump-age`: CRITICAL when the newest complete dump set finished longer ago than `maxAgeMs`, or there is none. */
export function dumpAgeFinding(sets: readonly DumpSentinel[], now: number, maxAgeMs: number): Finding {
  const newest = [...sets].sort((a, b) => b.FinishTime.localeCompare(a.FinishTime))[0];
  if (!newest) return { state: 'CRITICAL', message: 'no dump set in the archive' };
  const age = now - Date.parse(newest.FinishTime);
  const said = `newest dump set ${newest.DumpName} finished ${formatDuration(Math.max(age, 0))} ago`;
  return age > maxAgeMs ? { state: 'CRITICAL', message: `${said}, more than ${formatDuration(maxAgeMs)}` } : { state: 'OK', message: said };
}
