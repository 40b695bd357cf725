/** Choosing the backup to restore for a recovery target. */
import { NotFoundError, WalshipError } from '../errors.ts';
import { parseLsn } from '../postgres/lsn.ts';
import { describeRecoveryTarget, type RecoveryTarget } from '../postgres/recovery-settings.ts';
import type { Storage } from '../storage/storage.ts';
import { type BackupSentinel, readSentinel, requireBackupName } from './backups.ts';
import { ArchiveCatalog } from './catalog.ts';

/**
 * The backup to restore: the one named, or for LATEST the newest complete
 * backup that finished before the recovery target (when the target is a time
 * or an LSN), as pgBackRest chooses. A named backup is read alone, with no
 * listing; LATEST lists the backups, unless a loaded `catalog` holds them.
 */
export async function chooseBackup(storage: Storage, requested: string, target: RecoveryTarget | undefined, catalog?: ArchiveCatalog): Promise<BackupSentinel> {
  if (requested !== 'LATEST') {
    const sentinel = await readSentinel(storage, requireBackupName(requested));
    if (!finishedBefore(sentinel, target)) {
      throw new WalshipError(
        `backup ${requested} finished at ${sentinel.FinishTime} (LSN ${sentinel.FinishLSN}), after the recovery target ${describeRecoveryTarget(target)}: restore an older backup, or LATEST to let walship choose`,
      );
    }
    return sentinel;
  }
  const backups = (catalog ?? (await ArchiveCatalog.load(storage, { wal: false }))).backups();
  if (backups.length === 0) throw new NotFoundError(`${storage.location} holds no complete backup: run backup-push first`);
  const chosen = backups.filter((sentinel) => finishedBefore(sentinel, target)).at(-1);
  if (!chosen) {
    const oldest = backups[0]!;
    throw new WalshipError(
      `no backup finished before the recovery target ${describeRecoveryTarget(target)}: the oldest, ${oldest.BackupName}, finished at ${oldest.FinishTime} (LSN ${oldest.FinishLSN})`,
    );
  }
  return chosen;
}

function finishedBefore(sentinel: BackupSentinel, target: RecoveryTarget | undefined): boolean {
  if (target?.kind === 'time') return Date.parse(sentinel.FinishTime) <= target.epochMs;
  if (target?.kind === 'lsn') return parseLsn(sentinel.FinishLSN) <= target.value;
  return true;
}
