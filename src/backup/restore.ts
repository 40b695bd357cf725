/**
 * backup-fetch as a whole: choose the backup, create the spool that will hold
 * the recovery settings (before the download, so a restore never fails at
 * its end for want of it), restore and verify the files, and set the cluster
 * up to recover from the archive on its own.
 */
import type { BackupSentinel } from '../archive/backups.ts';
import { chooseBackup } from '../archive/select.ts';
import type { Config } from '../config/config.ts';
import { log } from '../log/logger.ts';
import { type RecoveryTarget, type RecoveryTargetAction, shellQuote } from '../postgres/recovery-settings.ts';
import type { Storage } from '../storage/storage.ts';
import { interruptible } from '../util/process.ts';
import { createSpoolDirectory, type SpoolDirectory } from '../wal/spool.ts';
import { fetchBackup } from './fetch.ts';
import { type ArchivingChoice, requireOutsideDataDirectory, setUpRecovery } from './recovery-setup.ts';

/** How the restored cluster recovers from the archive. */
export interface RecoveryRequest {
  target?: RecoveryTarget;
  action?: RecoveryTargetAction;
  standby: boolean;
  archiving: ArchivingChoice;
  /** The restored cluster's spool, where its recovery settings go. */
  spool: SpoolDirectory;
  /** The settings restore_command will need, carried into the spool. */
  config: Config;
}

export interface BackupRestoreSettings {
  storage: Storage;
  downloadConcurrency: number;
  /** The new data directory (absolute). */
  destination: string;
  /** A backup name, or LATEST; or the backup already chosen. */
  backup: string | BackupSentinel;
  /** Empty a non-empty destination first. */
  force: boolean;
  /** Undefined: restore the files only (--no-recovery-config). */
  recovery: RecoveryRequest | undefined;
}

/** Restores a backup as a cluster; returns lines describing how it will recover. */
export async function restoreBackup(settings: BackupRestoreSettings): Promise<string[]> {
  const { storage, destination, recovery } = settings;
  const sentinel = typeof settings.backup === 'string' ? await chooseBackup(storage, settings.backup, recovery?.target) : settings.backup;
  if (recovery?.spool.configured) requireOutsideDataDirectory(recovery.spool.configured, destination);
  const spool = recovery && (await createSpoolDirectory(recovery.spool));
  // Ctrl-C or a service manager's SIGTERM stops the downloads and removes the partial restore.
  await interruptible((signal) => fetchBackup({ storage, downloadConcurrency: settings.downloadConcurrency, destination, force: settings.force, signal }, sentinel));
  const description = recovery && spool ? await setUpRecovery(destination, spool, recovery.config, { backupName: sentinel.BackupName, ...recovery }) : [];
  if (process.getuid?.() === 0) {
    // The server's OS user must own the data directory and be able to read the recovery settings.
    const owned = spool ? [destination, spool] : [destination];
    log.warning(
      `the restored files${spool ? ' and the recovery settings' : ''} belong to root, and PostgreSQL will not run as root: chown -R postgres: ${shellQuote(owned)}, or run backup-fetch as the PostgreSQL OS user`,
    );
  }
  return description;
}
