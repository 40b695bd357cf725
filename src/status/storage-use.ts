/**
 * Storage use: objects and bytes by kind, from the catalog's one listing,
 * and what the retention policy configured in settings (WALSHIP_RETAIN_*,
 * as a bare `delete retain` reads it) would delete now: retention's own plan.
 */
import type { ArchiveCatalog } from '../archive/catalog.ts';
import { formatBytes } from '../progress/progress.ts';
import { planRetention } from '../retention/delete.ts';
import type { RetentionRequest } from '../retention/plan.ts';
import { type MetricSample, plural, type StatusSection } from './section.ts';

export function storageSection(catalog: ArchiveCatalog, location: string, retention: RetentionRequest | undefined, now: number): StatusSection {
  const kinds = Object.entries(catalog.storageUse).filter(([kind, use]) => use.objects > 0 || kind === 'wal' || kind === 'backups');
  const metrics: MetricSample[] = kinds.flatMap(([kind, use]) => [
    { name: 'walship_storage_bytes', help: 'Bytes in storage, by kind (wal, backups, dumps, walship records, other).', labels: { kind }, value: use.bytes },
    { name: 'walship_storage_objects', help: 'Objects in storage, by kind.', labels: { kind }, value: use.objects },
  ]);
  const lines = [`storage: ${location}: ${kinds.map(([kind, use]) => `${kind} ${formatBytes(use.bytes)} in ${plural(use.objects, 'object')}`).join(', ')}`];
  let wouldDelete: { backups: string[]; wal_segments: number; bytes: number } | null = null;
  if (retention) {
    const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const plan = planRetention(catalog, location, retention, { now, timeZone });
    const backups = plan.backups.filter((decision) => decision.action === 'delete');
    const walSegments = plan.wal.deletions.reduce((sum, deletion) => sum + deletion.segments, 0);
    const bytes = backups.reduce((sum, decision) => sum + decision.backup.CompressedSize, 0) + plan.wal.deletions.reduce((sum, deletion) => sum + deletion.bytes, 0);
    wouldDelete = { backups: backups.map((decision) => decision.backup.BackupName), wal_segments: walSegments, bytes };
    metrics.push({ name: 'walship_retention_deletable_bytes', help: 'Bytes the configured retention policy (WALSHIP_RETAIN_*) would delete now.', value: bytes });
    lines.push(`retention: the configured policy would delete ${plural(backups.length, 'backup')} and ${plural(walSegments, 'WAL segment')} now (${formatBytes(bytes)})`);
  } else {
    lines.push('retention: no policy configured (WALSHIP_RETAIN_*)');
  }
  return {
    name: 'storage',
    figures: { location, by_kind: Object.fromEntries(kinds), retention_would_delete: wouldDelete },
    findings: [],
    metrics,
    lines,
  };
}
