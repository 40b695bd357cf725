/**
 * Backups: how many, the newest (its age against --max-backup-age) and the
 * oldest, their sizes; and with a key configured, those stored unencrypted
 * (from their sentinels) and the WAL stored unencrypted where the listing
 * shows each object's metadata (catalog.unencryptedWal).
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import type { Finding } from '../checks/verdict.ts';
import { formatBytes } from '../progress/progress.ts';
import { formatAge, formatTime, type MetricSample, plural, seconds, type StatusSection } from './section.ts';

export function backupsSection(catalog: ArchiveCatalog, now: number, maxAgeMs: number, keyConfigured: boolean): StatusSection {
  const backups = catalog.backups();
  const newest = backups.at(-1);
  const oldest = backups[0];
  const compressed = backups.reduce((sum, backup) => sum + backup.CompressedSize, 0);
  const uncompressed = backups.reduce((sum, backup) => sum + backup.UncompressedSize, 0);
  const findings: Finding[] = [];
  const metrics: MetricSample[] = [{ name: 'walship_backup_count', help: 'Complete backups in storage.', value: backups.length }];
  const lines: string[] = [];
  if (!newest) {
    findings.push({ state: 'CRITICAL', message: 'no complete backup in storage' });
    lines.push('backups: none complete');
  } else {
    const age = now - Date.parse(newest.FinishTime);
    if (age > maxAgeMs) findings.push({ state: 'CRITICAL', message: `newest backup is ${formatAge(age)} old (limit ${formatAge(maxAgeMs)})` });
    metrics.push({ name: 'walship_backup_last_finish_timestamp_seconds', help: 'When the newest complete backup finished.', value: seconds(Date.parse(newest.FinishTime)) });
    metrics.push({ name: 'walship_backup_first_finish_timestamp_seconds', help: 'When the oldest complete backup finished.', value: seconds(Date.parse(oldest!.FinishTime)) });
    lines.push(`backups: ${backups.length}, newest ${newest.BackupName} finished ${formatTime(new Date(newest.FinishTime))} (${formatAge(age)} ago), oldest ${oldest!.BackupName} finished ${formatTime(new Date(oldest!.FinishTime))}; ${formatBytes(compressed)} stored of ${formatBytes(uncompressed)}`);
  }
  const unencrypted = keyConfigured ? backups.filter((backup) => backup.Encryption === undefined).map((backup) => backup.BackupName) : [];
  if (unencrypted.length > 0) findings.push({ state: 'WARNING', message: `${plural(unencrypted.length, 'backup')} stored unencrypted although a key is configured (${unencrypted.slice(0, 3).join(', ')}${unencrypted.length > 3 ? ', ...' : ''})` });
  const unencryptedWal = keyConfigured ? catalog.unencryptedWal : undefined;
  if (unencryptedWal) findings.push({ state: 'WARNING', message: `${plural(unencryptedWal, 'WAL object')} stored unencrypted although a key is configured` });
  if (unencrypted.length > 0 || unencryptedWal !== undefined) metrics.push({ name: 'walship_unencrypted_objects', help: 'Backups (and WAL objects, where the listing shows metadata) stored unencrypted although a key is configured.', value: unencrypted.length + (unencryptedWal ?? 0) });
  return {
    name: 'backups',
    figures: {
      count: backups.length,
      newest: newest ? { name: newest.BackupName, finish_time: newest.FinishTime, age_seconds: Math.round((now - Date.parse(newest.FinishTime)) / 1000) } : null,
      oldest: oldest ? { name: oldest.BackupName, finish_time: oldest.FinishTime } : null,
      compressed_bytes: compressed,
      uncompressed_bytes: uncompressed,
      incomplete_folders: catalog.incompleteBackups().length,
      ...(keyConfigured ? { unencrypted_backups: unencrypted, unencrypted_wal_objects: unencryptedWal ?? 'not known: this storage lists no metadata' } : {}),
    },
    findings,
    metrics,
    lines,
  };
}
