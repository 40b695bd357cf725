/**
 * Logical dumps, when the archive has dump sets or --max-dump-age asks:
 * the newest set's age (dump/retention.ts's finding). A cluster that never
 * dumps is not failing.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import { dumpAgeFinding } from '../dump/retention.ts';
import { type MetricSample, type StatusSection } from './section.ts';

export function dumpsSection(catalog: ArchiveCatalog, now: number, maxAgeMs: number, asked: boolean): StatusSection | undefined {
  const sets = catalog.dumpSets();
  if (sets.length === 0 && !asked) return undefined;
  const finding = dumpAgeFinding(sets, now, maxAgeMs);
  const newest = sets.at(-1);
  const metrics: MetricSample[] = [{ name: 'walship_dump_sets', help: 'Complete logical dump sets in storage.', value: sets.length }];
  if (newest) metrics.push({ name: 'walship_dump_last_finish_timestamp_seconds', help: 'When the newest complete dump set finished.', value: Date.parse(newest.FinishTime) / 1000 });
  return {
    name: 'dumps',
    figures: { count: sets.length, newest: newest ? { name: newest.DumpName, finish_time: newest.FinishTime } : null },
    findings: finding.state === 'OK' ? [] : [finding],
    metrics,
    lines: [`dumps: ${sets.length} sets; ${finding.message}`],
  };
}
