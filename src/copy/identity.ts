/**
 * A copy holds the archive of the same cluster as its source, or nothing
 * yet: each side's walship/archive.json (or, without one, its backups'
 * sentinels) names the cluster, and two that differ are never mixed. A target
 * without the record gets the source's first, so it is a complete archive
 * that wal-push and backup-push would check like the source.
 */
import type { BackupOrigin } from '../archive/catalog.ts';
import { type ArchiveRecord, readArchiveRecord } from '../archive/identity.ts';
import { ARCHIVE_IDENTITY_KEY } from '../archive/layout.ts';
import { NotFoundError, WalshipError } from '../errors.ts';
import { keyIdOf } from '../stages/encrypt/encryption.ts';
import type { Storage } from '../storage/storage.ts';
import { relay } from './relay.ts';

export interface ArchiveSide {
  storage: Storage;
  record: ArchiveRecord | undefined;
  /** The clusters its backups came from, where known (ArchiveCatalog.backupOrigins). */
  origins?: readonly BackupOrigin[];
}

/** Both sides' records, read at once. */
export async function readRecords(source: Storage, target: Storage): Promise<[ArchiveRecord | undefined, ArchiveRecord | undefined]> {
  return Promise.all([readArchiveRecord(source), readArchiveRecord(target)]);
}

function clusterOf(side: ArchiveSide): { systemIdentifier: string; evidence: string } | undefined {
  if (side.record) return { systemIdentifier: side.record.systemIdentifier, evidence: ARCHIVE_IDENTITY_KEY };
  const origin = side.origins?.[0];
  return origin && { systemIdentifier: origin.systemIdentifier, evidence: `backup ${origin.backup}` };
}

/** A copy's storage holds the archive of another cluster. */
export class OtherClusterError extends WalshipError {}

/** Refuses, with one line, to copy between archives of two clusters. */
export function requireSameCluster(source: ArchiveSide, target: ArchiveSide): void {
  const from = clusterOf(source);
  const to = clusterOf(target);
  if (from && to && from.systemIdentifier !== to.systemIdentifier) {
    throw new OtherClusterError(
      `${target.storage.location} holds the archive of the cluster with system identifier ${to.systemIdentifier} (${to.evidence}), but ${source.storage.location} that of cluster ${from.systemIdentifier} (${from.evidence}): give each cluster's copy a prefix of its own; nothing was copied`,
    );
  }
}

/**
 * Refuses a target whose config file names another encryption key than the
 * source's: objects travel as stored, so restores from the copy need the
 * source's key. A target without a key is fine: copying needs none.
 */
export async function requireSameKey(source: Storage, target: Storage): Promise<void> {
  if (!source.encryption || !target.encryption) return;
  const [from, to] = await Promise.all([keyIdOf(source.encryption), keyIdOf(target.encryption)]);
  if (from !== to) {
    throw new WalshipError(
      `${target.encryption.origin} is another key (key id ${to}) than the source's (${source.encryption.origin}, key id ${from}): a copy holds the objects as the source stored them, so configure the source's key for it; nothing was copied`,
    );
  }
}

/** Gives the target the source's walship/archive.json when it has none; true when it was copied. */
export async function copyArchiveRecord(source: ArchiveSide, target: ArchiveSide): Promise<boolean> {
  if (!source.record || target.record) return false;
  let stored;
  try {
    stored = await source.storage.get(ARCHIVE_IDENTITY_KEY);
  } catch (error) {
    if (error instanceof NotFoundError) return false; // removed since it was read
    throw error;
  }
  const outcome = await relay(stored, target.storage);
  if (outcome.kind === 'different') {
    // Another process recorded a cluster meanwhile: check it again.
    requireSameCluster(source, { storage: target.storage, record: await readArchiveRecord(target.storage) });
  }
  return outcome.kind === 'copied';
}
