/**
 * Dump sets under retention and monitoring: what `delete` (its dump scope)
 * keeps and removes, and the finding `status` reports for the newest dump
 * set's age. These are the functions those commands call; they hold no
 * command code. Deleting goes through archive/dumps.ts's deleteDumpSet: the
 * sentinel first, so a set stops existing at once and a stopped delete
 * leaves only a folder without a sentinel (ArchiveCatalog.incompleteDumps).
 *
 * Always kept, whatever the policy but `everything FORCE`: permanent sets
 * (dump-mark), and the newest set.
 */
import type { IncompleteDump } from '../archive/catalog.ts';
import { deleteDumpSet, type DumpSentinel } from '../archive/dumps.ts';
import type { Finding } from '../checks/verdict.ts';
import { ConfigError } from '../errors.ts';
import { formatDuration } from '../progress/progress.ts';
import type { Storage } from '../storage/storage.ts';

/** WAL-G's delete verbs, for dump sets: keep the newest `count`, delete those finished before `time`, or delete all. */
export type DumpPolicy = { verb: 'retain'; count: number } | { verb: 'before'; time: number } | { verb: 'everything'; force: boolean };

export interface DumpDecision {
  dump: DumpSentinel;
  action: 'keep' | 'delete';
  reason: string;
}

/** What `policy` does to `sets` (the catalog's dumpSets()), newest first. */
export function planDumpRetention(sets: readonly DumpSentinel[], policy: DumpPolicy): DumpDecision[] {
  const newestFirst = [...sets].sort((a, b) => b.FinishTime.localeCompare(a.FinishTime) || b.DumpName.localeCompare(a.DumpName));
  if (policy.verb === 'everything') {
    const permanent = newestFirst.filter((set) => set.IsPermanent);
    if (permanent.length > 0 && !policy.force) {
      throw new ConfigError(`permanent dump sets would be deleted (${permanent.map((set) => set.DumpName).join(', ')}): dump-mark -i them first, or delete everything FORCE`);
    }
    return newestFirst.map((dump) => ({ dump, action: 'delete', reason: 'everything' }));
  }
  return newestFirst.map((dump, index): DumpDecision => {
    if (dump.IsPermanent) return { dump, action: 'keep', reason: 'permanent' };
    if (index === 0) return { dump, action: 'keep', reason: 'the newest dump set' };
    if (policy.verb === 'retain') {
      return index < policy.count ? { dump, action: 'keep', reason: `one of the ${policy.count} newest` } : { dump, action: 'delete', reason: `older than the ${policy.count} newest` };
    }
    return Date.parse(dump.FinishTime) < policy.time
      ? { dump, action: 'delete', reason: `finished before ${new Date(policy.time).toISOString()}` }
      : { dump, action: 'keep', reason: `finished at or after ${new Date(policy.time).toISOString()}` };
  });
}

/** Deletes what a plan says to delete, one set at a time; returns the objects and bytes removed. */
export async function applyDumpRetention(storage: Storage, decisions: readonly DumpDecision[]): Promise<{ sets: number; objects: number; bytes: number }> {
  const removed = { sets: 0, objects: 0, bytes: 0 };
  for (const { dump, action } of decisions) {
    if (action !== 'delete') continue;
    const { objects, bytes } = await deleteDumpSet(storage, dump.DumpName);
    removed.sets++;
    removed.objects += objects;
    removed.bytes += bytes;
  }
  return removed;
}

/** Folders without a sentinel whose newest object is older than `minimumAgeMs`: garbage, as no dump-push can still be writing them. */
export function dumpGarbage(incomplete: readonly IncompleteDump[], now: number, minimumAgeMs: number): IncompleteDump[] {
  return incomplete.filter((folder) => now - folder.newest.getTime() > minimumAgeMs);
}

/** `status --max-dump-age`: CRITICAL when the newest complete dump set finished longer ago than `maxAgeMs`, or there is none. */
export function dumpAgeFinding(sets: readonly DumpSentinel[], now: number, maxAgeMs: number): Finding {
  const newest = [...sets].sort((a, b) => b.FinishTime.localeCompare(a.FinishTime))[0];
  if (!newest) return { state: 'CRITICAL', message: 'no dump set in the archive' };
  const age = now - Date.parse(newest.FinishTime);
  const said = `newest dump set ${newest.DumpName} finished ${formatDuration(Math.max(age, 0))} ago`;
  return age > maxAgeMs ? { state: 'CRITICAL', message: `${said}, more than ${formatDuration(maxAgeMs)}` } : { state: 'OK', message: said };
}
