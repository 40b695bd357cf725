/** backup-fetch <destination> <name|LATEST>: restore a base backup and set up recovery. */
import { resolve } from 'node:path';
import { chooseBackup } from '../archive/select.ts';
import { fetchBackup } from '../backup/fetch.ts';
import { chooseArchiving, manualRecoverySteps, requireOutsideDataDirectory, setUpRecovery } from '../backup/recovery-setup.ts';
import type { Config } from '../config/config.ts';
import { readDownloadConcurrency } from '../config/settings.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { log } from '../log/logger.ts';
import { chooseRecoveryTarget, RECOVERY_TARGET_ACTIONS, type RecoveryTargetAction, shellQuote } from '../postgres/recovery-settings.ts';
import { openStorage } from '../storage/open.ts';
import { createSpoolDirectory, spoolDirectory } from '../wal/spool.ts';
import type { CommandContext } from './command.ts';

interface FetchOptions {
  recoveryTargetTime?: string;
  recoveryTargetLsn?: string;
  recoveryTargetXid?: string;
  recoveryTargetName?: string;
  recoveryTargetImmediate?: boolean;
  recoveryTargetAction?: string;
  standby?: boolean;
  archive?: boolean;
  recoveryConfig?: boolean;
  force?: boolean;
}

function readAction(action: string | undefined): RecoveryTargetAction | undefined {
  if (action === undefined) return undefined;
  const match = RECOVERY_TARGET_ACTIONS.find((allowed) => allowed === action);
  if (!match) throw new ConfigError(`--recovery-target-action "${action}" is invalid: expected ${RECOVERY_TARGET_ACTIONS.join(', ')}`);
  return match;
}

/** commander lets the last of --archive and --no-archive win, so the command line itself is checked for both. */
function readArchive(options: FetchOptions, argv: string[]): boolean | undefined {
  if (argv.includes('--archive') && argv.includes('--no-archive')) {
    throw new ConfigError('--archive and --no-archive contradict each other: give one (--archive: the restored server archives once promoted; --no-archive: it does not)');
  }
  return options.archive;
}

/** The spool that will hold the recovery settings, created before the download so a restore never fails at its end for want of it. */
async function createRecoverySpool(config: Config, dataDirectory: string): Promise<string> {
  const spool = spoolDirectory(config, dataDirectory);
  if (spool.configured) requireOutsideDataDirectory(spool.configured, dataDirectory);
  return createSpoolDirectory(spool);
}

export async function run({ config }: CommandContext, [destination, requested]: string[], options: FetchOptions): Promise<number> {
  const target = chooseRecoveryTarget({
    time: options.recoveryTargetTime,
    lsn: options.recoveryTargetLsn,
    xid: options.recoveryTargetXid,
    name: options.recoveryTargetName,
    immediate: options.recoveryTargetImmediate,
  });
  const action = readAction(options.recoveryTargetAction);
  if (action && !target) throw new ConfigError('--recovery-target-action needs a recovery target (--recovery-target-time, -lsn, -xid, -name or -immediate)');
  const archive = readArchive(options, process.argv);
  const writeRecoveryConfig = options.recoveryConfig !== false;
  if (!writeRecoveryConfig && (target || options.standby || archive !== undefined)) {
    throw new ConfigError('--no-recovery-config writes no recovery settings: drop the recovery target, --standby, --archive and --no-archive options, or drop --no-recovery-config');
  }
  const standby = options.standby ?? false;
  const archiving = chooseArchiving({ target, standby, archive });
  const downloadConcurrency = readDownloadConcurrency(config);
  const storage = await openStorage(config);
  const dataDirectory = resolve(destination!);

  const sentinel = await chooseBackup(storage, requested!, target);
  const spool = writeRecoveryConfig ? await createRecoverySpool(config, dataDirectory) : undefined;
  // Ctrl-C or a service manager's SIGTERM stops the downloads and removes the partial restore.
  const interruption = new AbortController();
  const interrupt = () => interruption.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const fetchSettings = { storage, downloadConcurrency, destination: dataDirectory, force: options.force ?? false, signal: interruption.signal };
    await fetchBackup(fetchSettings, sentinel);
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  if (spool) {
    const description = await setUpRecovery(dataDirectory, spool, config, { backupName: sentinel.BackupName, target, action, standby, archiving });
    for (const line of description) process.stderr.write(`backup-fetch: ${line}\n`);
  } else {
    process.stdout.write(`${manualRecoverySteps(dataDirectory)}\n`);
  }
  if (process.getuid?.() === 0) {
    // The server's OS user must own the data directory and be able to read the recovery settings.
    const owned = spool ? [dataDirectory, spool] : [dataDirectory];
    log.warning(
      `the restored files${spool ? ' and the recovery settings' : ''} belong to root, and PostgreSQL will not run as root: chown -R postgres: ${shellQuote(owned)}, or run backup-fetch as the PostgreSQL OS user`,
    );
  }
  return ExitCode.ok;
}
