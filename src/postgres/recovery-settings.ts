/**
 * Recovery settings for a restored cluster (PostgreSQL 12+): restore_command,
 * at most one recovery target and, for a copy that must not archive,
 * archive_mode in postgresql.auto.conf, plus recovery.signal (targeted
 * recovery) or standby.signal (standby mode).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ConfigError } from '../errors.ts';
import { writeFileAtomically } from '../fs/durable.ts';
import { ignoreMissing } from '../fs/missing.ts';
import { formatLsn, parseLsn } from './lsn.ts';

export type RecoveryTarget =
  | { kind: 'immediate' }
  | { kind: 'time'; value: string; epochMs: number }
  | { kind: 'lsn'; value: bigint }
  | { kind: 'xid'; value: string }
  | { kind: 'name'; value: string };

export const RECOVERY_TARGET_ACTIONS = ['pause', 'promote', 'shutdown'] as const;
export type RecoveryTargetAction = (typeof RECOVERY_TARGET_ACTIONS)[number];

const TIME_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * A time with an explicit UTC offset, kept to the microsecond as given, as
 * PostgreSQL writes it; `what` (an option, a verb) names it in errors.
 * Without an offset the server would read a target time in its own time zone, so one is required.
 */
export function parseTimeWithOffset(text: string, what: string): { value: string; epochMs: number } {
  const match = TIME_PATTERN.exec(text.trim());
  if (!match) {
    throw new ConfigError(
      `${what} "${text}" is not a timestamp with a UTC offset: write it like 2024-05-01 10:00:00+00 or 2024-05-01T10:00:00.123456Z`,
    );
  }
  const [, year, month, day, hour, minute, second = '00', fraction = '', zone] = match;
  const offset = /^(Z|UTC)$/i.test(zone!) ? '+00:00' : zone!.length === 3 ? `${zone}:00` : zone!.replace(/^([+-]\d{2}):?(\d{2})$/, '$1:$2');
  const offsetMinutes = (offset.startsWith('-') ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const local = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  const check = new Date(local);
  if (check.getUTCDate() !== Number(day) || check.getUTCMonth() !== Number(month) - 1 || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) {
    throw new ConfigError(`${what} "${text}" is not a valid date and time`);
  }
  return {
    value: `${year}-${month}-${day} ${hour}:${minute}:${second}${fraction}${offset}`,
    epochMs: local - offsetMinutes * 60_000 + Math.floor(Number(`0${fraction || '.0'}`) * 1000),
  };
}

export interface RecoveryTargetOptions {
  time?: string;
  lsn?: string;
  xid?: string;
  name?: string;
  immediate?: boolean;
}

/** The one recovery target the options ask for, or undefined for "replay to the end". */
export function chooseRecoveryTarget(options: RecoveryTargetOptions): RecoveryTarget | undefined {
  const given = [
    options.time !== undefined && '--recovery-target-time',
    options.lsn !== undefined && '--recovery-target-lsn',
    options.xid !== undefined && '--recovery-target-xid',
    options.name !== undefined && '--recovery-target-name',
    options.immediate && '--recovery-target-immediate',
  ].filter(Boolean);
  if (given.length > 1) throw new ConfigError(`choose one recovery target, not ${given.join(' and ')}`);
  if (options.time !== undefined) return { kind: 'time', ...parseTimeWithOffset(options.time, '--recovery-target-time') };
  if (options.lsn !== undefined) {
    try {
      return { kind: 'lsn', value: parseLsn(options.lsn) };
    } catch {
      throw new ConfigError(`--recovery-target-lsn "${options.lsn}" is not an LSN: write it like 0/3000060`);
    }
  }
  if (options.xid !== undefined) {
    if (!/^\d+$/.test(options.xid)) throw new ConfigError(`--recovery-target-xid "${options.xid}" is not a transaction ID: expected a number`);
    return { kind: 'xid', value: options.xid };
  }
  if (options.name !== undefined) {
    if (options.name === '') throw new ConfigError('--recovery-target-name must not be empty');
    return { kind: 'name', value: options.name };
  }
  return options.immediate ? { kind: 'immediate' } : undefined;
}

export function describeRecoveryTarget(target: RecoveryTarget | undefined): string {
  if (!target) return 'the end of the archive';
  if (target.kind === 'immediate') return 'the end of the backup (immediate)';
  if (target.kind === 'lsn') return `LSN ${formatLsn(target.value)}`;
  return `${target.kind} ${target.value}`;
}

/** A string value in postgresql.conf syntax: single quotes, with ' and \ escaped. */
export function quoteSettingValue(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** Quotes words for /bin/sh, which runs restore_command. */
export function shellQuote(words: string[]): string {
  return words.map((word) => (/^[A-Za-z0-9_\/.,:=+@%-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export interface RecoverySettings {
  restoreCommand: string;
  target?: RecoveryTarget;
  action?: RecoveryTargetAction;
  /**
   * archive_mode = 'off': once promoted, the server archives nothing. In
   * postgresql.auto.conf, read after postgresql.conf and its includes, it wins
   * over whatever the restored configuration says. Otherwise that stays.
   */
  archivingOff?: boolean;
  /** One line saying who wrote the block and why. */
  comment: string;
}

/**
 * The lines to append to postgresql.auto.conf. Every recovery target is
 * written, the unused ones as '' and the chosen one last: the last occurrence
 * of a setting wins, so a target left over in the restored configuration is
 * cleared, and the server applies them in this order, where setting one
 * target while another is still set is an error ("multiple recovery targets").
 */
export function renderRecoverySettings(settings: RecoverySettings): string {
  const { target } = settings;
  const targets: [string, string, boolean][] = [
    ['recovery_target', 'immediate', target?.kind === 'immediate'],
    ['recovery_target_time', target?.kind === 'time' ? target.value : '', target?.kind === 'time'],
    ['recovery_target_lsn', target?.kind === 'lsn' ? formatLsn(target.value) : '', target?.kind === 'lsn'],
    ['recovery_target_xid', target?.kind === 'xid' ? target.value : '', target?.kind === 'xid'],
    ['recovery_target_name', target?.kind === 'name' ? target.value : '', target?.kind === 'name'],
  ];
  const values: [string, string][] = [
    ['restore_command', settings.restoreCommand],
    ...targets.filter(([, , chosen]) => !chosen).map(([name]): [string, string] => [name, '']),
    ...targets.filter(([, , chosen]) => chosen).map(([name, value]): [string, string] => [name, value]),
  ];
  if (settings.action) values.push(['recovery_target_action', settings.action]);
  if (settings.archivingOff) values.push(['archive_mode', 'off']);
  const lines = values.map(([name, value]) => `${name} = ${quoteSettingValue(value)}`);
  return `# ${settings.comment}\n${lines.join('\n')}\n`;
}

/** Appends the recovery settings to postgresql.auto.conf and creates the signal file, durably. */
export async function writeRecoverySetup(dataDirectory: string, settings: RecoverySettings, mode: 'recovery' | 'standby'): Promise<void> {
  const autoConf = join(dataDirectory, 'postgresql.auto.conf');
  const existing = (await readFile(autoConf, 'utf8').catch(ignoreMissing)) ?? '';
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
  await writeFileAtomically(autoConf, Readable.from([existing + separator + renderRecoverySettings(settings)]), { mode: 0o600 });
  await writeFileAtomically(join(dataDirectory, `${mode}.signal`), Readable.from([]), { mode: 0o600 });
}
