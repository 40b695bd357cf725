/**
 * The copies (WALSHIP_COPIES), when any is configured: each copy reachable
 * or not, the newest backup and WAL it holds, how far it lags the main
 * storage, and whether 3-2-1 holds (copy/status.ts works them out). A copy
 * lagging by more than --max-copy-lag is a WARNING, by more than four times
 * it CRITICAL; one that cannot be listed in bounded time lags by at most the
 * time since the last copy job that brought it up to date, judged the same
 * way (a WARNING when no such job is recorded: its lag is unknown); 3-2-1 not
 * kept is a WARNING.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import type { CheckState, Finding } from '../checks/verdict.ts';
import { copiesStatus, type CopiesStatus, type CopyTargetToCheck } from '../copy/status.ts';
import type { Storage } from '../storage/storage.ts';
import { formatAge, type MetricSample, plural, type StatusSection } from './section.ts';

export async function copiesSection(main: Storage, mainCatalog: ArchiveCatalog, copies: CopyTargetToCheck[], now: number, maxLagMs: number): Promise<StatusSection | undefined> {
  if (copies.length === 0) return undefined;
  const status = await copiesStatus(main, copies, { maxLagMs, now, mainCatalog });
  const findings = copyFindings(status, maxLagMs);
  return {
    name: 'copies',
    figures: { copies: status.copies, three_two_one: status.threeTwoOne },
    findings: findings.filter((finding) => finding.state !== 'OK'),
    metrics: copyMetrics(status),
    lines: findings.map((finding) => `copies: ${finding.message}`),
  };
}

export function copyFindings(status: CopiesStatus, maxLagMs: number): Finding[] {
  const findings: Finding[] = [];
  for (const copy of status.copies) {
    if (!copy.reachable && copy.upToDateAt === undefined) {
      findings.push({ state: 'WARNING', message: `copy ${copy.copy} is unreachable, its lag unknown (no recorded copy job brought it up to date): ${copy.error}` });
      continue;
    }
    const lagMs = copy.lagSeconds! * 1000;
    const state: CheckState = lagMs > 4 * maxLagMs ? 'CRITICAL' : lagMs > maxLagMs ? 'WARNING' : 'OK';
    if (!copy.reachable) {
      findings.push({ state, message: `copy ${copy.copy} is unreachable (${copy.error}); the last copy job that brought it up to date started ${formatAge(lagMs)} ago, so it lags by at most that (limit ${formatAge(maxLagMs)})` });
      continue;
    }
    const { backups, walFiles } = copy.missing!;
    const holds = `newest backup ${copy.newestBackup?.name ?? 'none'}, newest WAL ${copy.newestWal?.name ?? 'none'}`;
    findings.push({
      state,
      message: backups + walFiles === 0
        ? `copy ${copy.location} is up to date (${holds})`
        : `copy ${copy.location} lacks ${plural(backups, 'backup')} and ${plural(walFiles, 'WAL file')}, the oldest for ${formatAge(lagMs)} (limit ${formatAge(maxLagMs)}; ${holds})`,
    });
  }
  findings.push({ state: status.threeTwoOne.holds ? 'OK' : 'WARNING', message: `3-2-1 ${status.threeTwoOne.holds ? 'holds' : 'does not hold'}: ${status.threeTwoOne.reason}` });
  return findings;
}

export function copyMetrics(status: CopiesStatus): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const copy of status.copies) {
    const labels = { copy: copy.copy };
    samples.push({ name: 'walship_copy_reachable', help: 'Whether the copy could be listed in bounded time (1) or not (0).', labels, value: copy.reachable ? 1 : 0 });
    if (!copy.reachable) continue;
    samples.push(
      { name: 'walship_copy_lag_seconds', help: 'How long the oldest backup or WAL file the copy lacks has been in the main storage (0: it lacks nothing).', labels, value: copy.lagSeconds! },
      { name: 'walship_copy_missing_backups', help: 'Complete backups of the main storage the copy lacks.', labels, value: copy.missing!.backups },
      { name: 'walship_copy_missing_segments', help: 'WAL files of the main storage the copy lacks.', labels, value: copy.missing!.walFiles },
    );
    if (copy.newestBackup) {
      samples.push({ name: 'walship_copy_newest_backup_timestamp_seconds', help: 'Finish time of the newest backup the copy holds.', labels, value: Date.parse(copy.newestBackup.finishTime) / 1000 });
    }
  }
  samples.push({ name: 'walship_3_2_1', help: '1 when two storages hold the newest backup and the WAL since it, one of them off the database host; else 0.', value: status.threeTwoOne.holds ? 1 : 0 });
  return samples;
}
