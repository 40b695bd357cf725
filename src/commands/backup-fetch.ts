/** backup-fetch <destination> <name|LATEST>: restore a base backup and set up recovery. */
import { resolve } from 'node:path';
import { chooseBackup, fetchBackup } from '../backup/fetch.ts';
import { manualRecoverySteps, setUpRecovery } from '../backup/recovery-setup.ts';
import { readDownloadConcurrency } from '../config/settings.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { log } from '../log/logger.ts';
import { chooseRecoveryTarget, RECOVERY_TARGET_ACTIONS, type RecoveryTargetAction } from '../postgres/recovery-settings.ts';
import { openStorage } from '../storage/open.ts';
import type { CommandContext } from './command.ts';

interface FetchOptions {
  recoveryTargetTime?: string;
  recoveryTargetLsn?: string;
  recoveryTargetXid?: string;
  recoveryTargetName?: string;
  recoveryTargetImmediate?: boolean;
  recoveryTargetAction?: string;
  standby?: boolean;
  recoveryConfig?: boolean;
  force?: boolean;
}

function readAction(action: string | undefined): RecoveryTargetAction | undefined {
  if (action === undefined) return undefined;
  const match = RECOVERY_TARGET_ACTIONS.find((allowed) => allowed === action);
  if (!match) throw new ConfigError(`--recovery-target-action "${action}" is invalid: expected ${RECOVERY_TARGET_ACTIONS.join(', ')}`);
  return match;
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
  const writeRecoveryConfig = options.recoveryConfig !== false;
  if (!writeRecoveryConfig && (target || options.standby)) {
    throw new ConfigError('--no-recovery-config writes no recovery settings: drop the recovery target and --standby options, or drop --no-recovery-config');
  }
  const downloadConcurrency = readDownloadConcurrency(config);
  const storage = await openStorage(config);
  const dataDirectory = resolve(destination!);

  const sentinel = await chooseBackup(storage, requested!, target);
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
  if (writeRecoveryConfig) {
    const description = await setUpRecovery(dataDirectory, config, { backupName: sentinel.BackupName, target, action, standby: options.standby ?? false });
    process.stderr.write(`backup-fetch: ${description}\n`);
  } else {
    process.stdout.write(`${manualRecoverySteps(dataDirectory)}\n`);
  }
  if (process.getuid?.() === 0) {
    log.warning(`the restored files belong to root, and PostgreSQL will not run as root: chown -R postgres: ${dataDirectory}, or run backup-fetch as the PostgreSQL OS user`);
  }
  return ExitCode.ok;
}
