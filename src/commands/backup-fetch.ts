/** backup-fetch <destination> <name|LATEST>: restore a base backup and set up recovery. */
import { resolve } from 'node:path';
import { chooseArchiving, manualRecoverySteps } from '../backup/recovery-setup.ts';
import { restoreBackup } from '../backup/restore.ts';
import { readDownloadConcurrency } from '../config/settings.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { chooseRecoveryTarget, RECOVERY_TARGET_ACTIONS, type RecoveryTargetAction } from '../postgres/recovery-settings.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { spoolDirectory } from '../wal/spool.ts';
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
  const storage = await openStorage(storageSpecFrom(config));
  const dataDirectory = resolve(destination!);

  const description = await restoreBackup({
    storage,
    downloadConcurrency,
    destination: dataDirectory,
    backup: requested!,
    force: options.force ?? false,
    recovery: writeRecoveryConfig ? { target, action, standby, archiving, spool: spoolDirectory(config, dataDirectory), config } : undefined,
  });
  for (const line of description) process.stderr.write(`backup-fetch: ${line}\n`);
  if (!writeRecoveryConfig) process.stdout.write(`${manualRecoverySteps(dataDirectory, config)}\n`);
  return ExitCode.ok;
}
