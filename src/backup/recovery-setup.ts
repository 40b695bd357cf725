/**
 * Making a restored cluster recover on its own: restore_command runs this
 * walship binary with a config file that holds the storage settings, so the
 * server finds them even when a service manager starts it without the DBA's
 * environment. The file may hold credentials: it is created mode 0600 in the
 * cluster's spool, outside the data directory, so no pg_basebackup of the
 * cluster, and no replica cloned from it, ever carries it.
 *
 * Once promoted, a restored server archives with the source's settings,
 * usually into the source's archive. That suits a replacement, and harms the
 * source when the copy is a side copy: its new timeline's history file and WAL
 * would take the names the source needs when it fails over itself.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Config } from '../config/config.ts';
import { readEncryptionKey } from '../config/encryption.ts';
import { ConfigError } from '../errors.ts';
import { writeFileAtomically } from '../fs/durable.ts';
import {
  describeRecoveryTarget,
  type RecoveryTarget,
  type RecoveryTargetAction,
  shellQuote,
  writeRecoverySetup,
} from '../postgres/recovery-settings.ts';
import { walshipCommand } from '../util/self.ts';
import { readPrefetchEnabled } from '../config/settings.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { restoreCommandWithFastPath } from '../wal/restore-command.ts';
import { isInsideDirectory, PREFETCH_AREA, readPrefetchSetting, spoolDirectory, spoolNextTo } from '../wal/spool.ts';

export const RECOVERY_CONFIG_FILE = 'walship-recovery.json';

/** Settings restore_command needs: storage, credentials, compression, logging. */
const CARRIED_SETTINGS = /^(WALG_|WALE_|WALSHIP_|AWS_|AZURE_|GOOGLE_|GCS_)/;

/** The settings to write into the restored cluster's config file. */
export function carriedSettings(config: Config): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const name of config.names().sort()) {
    if (CARRIED_SETTINGS.test(name) && name !== 'WALG_CONFIG_PATH') settings[name] = config.get(name)!;
  }
  // An inline key goes as the 32 bytes it makes, in hex: JSON text cannot carry bytes that are not UTF-8.
  const key = settings.WALG_LIBSODIUM_KEY !== undefined ? readEncryptionKey(config) : undefined;
  if (key) Object.assign(settings, { WALG_LIBSODIUM_KEY: Buffer.from(key.bytes()).toString('hex'), WALG_LIBSODIUM_KEY_TRANSFORM: 'hex' });
  return settings;
}

export interface ArchivingChoice {
  /** archive_mode = 'off' is written; otherwise the restored configuration's archiving stays. */
  off: boolean;
  /** Why, for the user. */
  reason: string;
}

/**
 * Whether the restored server archives once promoted. --archive and
 * --no-archive decide; without them a standby or a restore to the end of the
 * archive (a replacement) keeps archiving, and a restore to a recovery target
 * (usually a side copy, to inspect a mistake) does not.
 */
export function chooseArchiving(options: { target: RecoveryTarget | undefined; standby: boolean; archive: boolean | undefined }): ArchivingChoice {
  if (options.archive === false) return { off: true, reason: '--no-archive' };
  if (options.archive === true) return { off: false, reason: '--archive' };
  if (options.standby) return { off: false, reason: '--standby' };
  if (options.target) return { off: true, reason: 'a recovery target: usually a side copy' };
  return { off: false, reason: 'no recovery target: usually a replacement' };
}

/** What the archiving choice means for the restored server, and how to change it before it is promoted. */
export function describeArchiving(choice: ArchivingChoice, dataDirectory: string): string[] {
  const autoConf = join(dataDirectory, 'postgresql.auto.conf');
  const onceStarted = (value: string) =>
    `once started, ALTER SYSTEM SET archive_mode = '${value}' and restart it before it is promoted: archive_mode changes only with a restart`;
  if (choice.off) {
    return [
      `archiving is off (${choice.reason}): archive_mode = 'off' in ${autoConf}, so once promoted this server archives nothing`,
      `to archive from it, set archive_mode = 'on' in that file before starting it (or restore with --archive); ${onceStarted('on')}`,
    ];
  }
  return [
    `archiving is kept (${choice.reason}): once promoted, this server archives its new timeline with the restored archive_mode and archive_command, usually into the source's archive`,
    `to keep it out of that archive, add archive_mode = 'off' to ${autoConf} before starting it (or restore with --no-archive); ${onceStarted('off')}`,
  ];
}

/** Refuses a spool inside the data directory, where every pg_basebackup of the cluster would copy the credentials. */
export function requireOutsideDataDirectory(spool: string, dataDirectory: string): void {
  if (isInsideDirectory(spool, dataDirectory)) {
    throw new ConfigError(
      `WALSHIP_SPOOL_DIR=${spool} is inside the data directory ${dataDirectory}: the recovery settings written there hold the storage credentials, and every pg_basebackup would copy them; set it to a directory outside`,
    );
  }
}

export interface RecoverySetupOptions {
  backupName: string;
  target?: RecoveryTarget;
  action?: RecoveryTargetAction;
  standby: boolean;
  archiving: ArchivingChoice;
}

/**
 * Writes the config file into the spool, then the recovery settings and the
 * signal file into the data directory; returns lines for the user.
 */
export async function setUpRecovery(dataDirectory: string, spool: string, config: Config, options: RecoverySetupOptions): Promise<string[]> {
  const configPath = join(spool, RECOVERY_CONFIG_FILE);
  // The spool is named, so the server's walship processes use this one whatever environment the server gets.
  const text = `${JSON.stringify({ ...carriedSettings(config), WALSHIP_SPOOL_DIR: spool }, null, 2)}\n`;
  await writeFileAtomically(configPath, Readable.from([text]), { mode: 0o600 });
  const restoreCommand = restoreCommandFor(config, configPath, spool);
  const mode = options.standby ? 'standby' : 'recovery';
  await writeRecoverySetup(
    dataDirectory,
    {
      restoreCommand,
      target: options.target,
      action: options.action,
      archivingOff: options.archiving.off,
      comment: `walship backup-fetch ${options.backupName} (${new Date().toISOString()}): recover from the archive`,
    },
    mode,
  );
  const action = options.target ? `, then ${options.action ?? 'pause (PostgreSQL default)'}` : '';
  return [
    `${mode}.signal written: on start, the server replays the archive to ${describeRecoveryTarget(options.target)}${action}; storage settings in ${configPath} (mode 0600, outside the data directory)`,
    ...describeArchiving(options.archiving, dataDirectory),
  ];
}

/** restore_command for a cluster whose spool is `spool`: the shell fast path over its prefetch areas, unless prefetching is off. */
function restoreCommandFor(config: Config, configPath: string, spool: string): string {
  const walFetch = [...walshipCommand(), '--config', configPath, 'wal-fetch'];
  if (!readPrefetchEnabled(config)) return `${shellQuote(walFetch)} %f %p`;
  return restoreCommandWithFastPath(walFetch, fastPathRoot(config, spool), storageSpecFrom(config).identity);
}

/** Where the fast path looks for prefetched segments: wal-fetch's first choice of prefetch root for that spool. */
function fastPathRoot(config: Config, spool: string): string {
  return readPrefetchSetting(config) ?? join(spool, PREFETCH_AREA);
}

/** What to do by hand after --no-recovery-config: the restore_command backup-fetch would have written, for the spool next to the data directory. */
export function manualRecoverySteps(dataDirectory: string, config: Config): string {
  const { configured, dataDirectory: resolved } = spoolDirectory(config, dataDirectory);
  const spool = configured ?? spoolNextTo(resolved);
  const restoreCommand = restoreCommandFor(config, '/path/to/walship.json', spool);
  const autoConf = join(dataDirectory, 'postgresql.auto.conf');
  return [
    `The files are restored in ${dataDirectory}; no recovery settings were written. To recover from the archive:`,
    `  1. add to ${autoConf}:`,
    `       restore_command = '${restoreCommand.replaceAll("'", "''")}'`,
    '     (the config file holds the storage settings: keep it outside the data directory, where every',
    '     pg_basebackup would copy it, and readable by the PostgreSQL user only; the shell part before',
    '     wal-fetch takes segments the prefetcher has ready without starting walship, and it looks in',
    `     ${fastPathRoot(config, spool)}: where wal-fetch prefetches elsewhere, that part just always misses)`,
    '     and a recovery target if you want one, e.g. recovery_target_time = \'2024-05-01 10:00:00+00\'',
    `  2. unless this server replaces the source, also add archive_mode = 'off': once promoted, it would`,
    "     archive its new timeline into the source's archive (archive_mode changes only with a restart)",
    `  3. create ${join(dataDirectory, 'recovery.signal')} (or standby.signal for a standby)`,
    `  4. start the server: pg_ctl -D ${dataDirectory} start`,
  ].join('\n');
}
