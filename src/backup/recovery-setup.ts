/**
 * Making a restored cluster recover on its own: restore_command runs this
 * walship binary with a config file that holds the storage settings, so the
 * server finds them even when a service manager starts it without the DBA's
 * environment. The file may hold credentials: it is created mode 0600 in the
 * data directory, readable by the data directory's owner only.
 */
import { join } from 'node:path';
import { isSea } from 'node:sea';
import { Readable } from 'node:stream';
import type { Config } from '../config/config.ts';
import { writeFileAtomically } from '../fs/durable.ts';
import {
  describeRecoveryTarget,
  type RecoveryTarget,
  type RecoveryTargetAction,
  shellQuote,
  writeRecoverySetup,
} from '../postgres/recovery-settings.ts';

export const RECOVERY_CONFIG_FILE = 'walship-recovery.json';

/** Settings restore_command needs: storage, credentials, compression, logging. */
const CARRIED_SETTINGS = /^(WALG_|WALE_|WALSHIP_|AWS_|AZURE_|GOOGLE_|GCS_)/;

/** How to run this walship: the single executable itself, or node and the entry script from source. */
export function walshipCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
}

/** The settings to write into the restored cluster's config file. */
export function carriedSettings(config: Config): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const name of config.names().sort()) {
    if (CARRIED_SETTINGS.test(name) && name !== 'WALG_CONFIG_PATH') settings[name] = config.get(name)!;
  }
  return settings;
}

export interface RecoverySetupOptions {
  backupName: string;
  target?: RecoveryTarget;
  action?: RecoveryTargetAction;
  standby: boolean;
}

/** Writes the config file, the recovery settings and the signal file; returns a description for the user. */
export async function setUpRecovery(dataDirectory: string, config: Config, options: RecoverySetupOptions): Promise<string> {
  const configPath = join(dataDirectory, RECOVERY_CONFIG_FILE);
  const text = `${JSON.stringify(carriedSettings(config), null, 2)}\n`;
  await writeFileAtomically(configPath, Readable.from([text]), { mode: 0o600 });
  const restoreCommand = `${shellQuote([...walshipCommand(), '--config', configPath, 'wal-fetch'])} %f %p`;
  const mode = options.standby ? 'standby' : 'recovery';
  await writeRecoverySetup(
    dataDirectory,
    {
      restoreCommand,
      target: options.target,
      action: options.action,
      comment: `walship backup-fetch ${options.backupName} (${new Date().toISOString()}): recover from the archive`,
    },
    mode,
  );
  const action = options.target ? `, then ${options.action ?? 'pause (PostgreSQL default)'}` : '';
  return `${mode}.signal written: on start, the server replays the archive to ${describeRecoveryTarget(options.target)}${action}; storage settings in ${configPath} (mode 0600)`;
}

/** What to do by hand after --no-recovery-config. */
export function manualRecoverySteps(dataDirectory: string): string {
  const restoreCommand = `${shellQuote([...walshipCommand(), '--config', '/path/to/walship.json', 'wal-fetch'])} %f %p`;
  return [
    `The files are restored in ${dataDirectory}; no recovery settings were written. To recover from the archive:`,
    `  1. add to ${join(dataDirectory, 'postgresql.auto.conf')}:`,
    `       restore_command = '${restoreCommand.replaceAll("'", "''")}'`,
    '     (the config file holds the storage settings; keep it readable by the PostgreSQL user only)',
    '     and a recovery target if you want one, e.g. recovery_target_time = \'2024-05-01 10:00:00+00\'',
    `  2. create ${join(dataDirectory, 'recovery.signal')} (or standby.signal for a standby)`,
    `  3. start the server: pg_ctl -D ${dataDirectory} start`,
  ].join('\n');
}
