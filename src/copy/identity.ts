/**
 * A copy holds the archive of the same cluster as its source, or nothing
 * yet: each side's walship/archive.json (or, without one, its backups'
 * sentinels) names the cluster, and two that differ are never mixed. A target
 * gets the source's record (the cluster, and how the archive is encrypted)
 * before anything else, so it is a complete archive that wal-push and
 * backup-push check like the source.
 */
import type { BackupOrigin } from '../archive/catalog.ts';
import { type ArchiveRecord, compareCopyEncryption, describeRecordedEncryption, readArchiveRecord } from '../archive/identity.ts';
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

/** A copy's storage holds another archive: another cluster's, or one in another encryption. */
export class OtherArchiveError extends WalshipError {}

/** Refuses, with one line, to copy between archives of two clusters. */
export function requireSameCluster(source: ArchiveSide, target: ArchiveSide): void {
  const from = clusterOf(source);
  const to = clusterOf(target);
  if (from && to && from.systemIdentifier !== to.systemIdentifier) {
    throw new OtherArchiveError(
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

/**
 * Gives the target the source's walship/archive.json when it has none, and
 * again when the source's record of its encryption moved on (a record
 * written before walship kept it, or `encryption-on`'s switch): wal-push,
 * backup-push and encryption-on against the copy then accept and refuse
 * exactly as against the source. It is the one object a copy replaces: a
 * record, rewritten in place at the source too. A target that records
 * another encryption is refused, also in a dry run (`write` false).
 */
export async function followArchiveRecord(source: ArchiveSide, target: ArchiveSide, write = true): Promise<'copied' | 'updated' | undefined> {
  if (!source.record) return undefined;
  const standing = target.record ? compareCopyEncryption(target.record.encryption, source.record.encryption) : 'behind';
  if (standing === 'other') {
    throw new OtherArchiveError(
      `${ARCHIVE_IDENTITY_KEY} in ${target.storage.location} records the archive as ${describeRecordedEncryption(target.record!.encryption)}, but in ${source.storage.location} as ${describeRecordedEncryption(source.record.encryption)}: a copy holds the objects as the source stored them, so give this copy a prefix of its own; nothing was copied`,
    );
  }
  if (standing === 'up-to-date' || !write) return undefined;
  let stored;
  try {
    stored = await source.storage.get(ARCHIVE_IDENTITY_KEY);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined; // removed since it was read
    throw error;
  }
  const outcome = await relay(stored, target.storage, { replace: target.record !== undefined });
  if (outcome.kind === 'different') {
    // Another process recorded the archive meanwhile: check it again.
    const recorded = { storage: target.storage, record: await readArchiveRecord(target.storage) };
    requireSameCluster(source, recorded);
    return followArchiveRecord(source, recorded);
  }
  if (outcome.kind !== 'copied') return undefined;
  return target.record ? 'updated' : 'copied';
}
