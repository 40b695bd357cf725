/**
 * status's thresholds: from options, else settings, else the defaults.
 * Durations take s, m, h and d (90s, 15m, 26h, 8d, 1d12h); a bad one gets
 * one line naming the option or setting.
 */
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';

export interface StatusThresholds {
  maxBackupAgeMs: number;
  /** How long archiving may be behind the server (WAL written but not in storage). */
  maxArchiveLagMs: number;
  maxDrillAgeMs: number;
  /** Dump sets are checked only when the archive has some or this was asked for. */
  maxDumpAgeMs: number;
  dumpAgeAsked: boolean;
  /** How far a copy may lag the main storage (the age of the oldest thing it lacks). */
  maxCopyLagMs: number;
}

const UNITS_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** 90s, 15m, 26h, 8d, 1d12h in milliseconds; `name` (an option or setting) names it in the error. */
export function parseThresholdDuration(text: string, name: string): number {
  const trimmed = text.trim();
  const match = DURATION.exec(trimmed);
  const ms = match && trimmed !== '' ? match.slice(1).reduce((sum, part, index) => sum + Number(part ?? 0) * Object.values(UNITS_MS)[index]!, 0) : 0;
  if (ms <= 0) throw new ConfigError(`${name} "${text}" is not a duration: write a number with a unit, such as 90s, 15m, 26h or 8d (s seconds, m minutes, h hours, d days)`);
  return ms;
}

const THRESHOLDS = {
  maxBackupAge: { option: '--max-backup-age', setting: 'WALSHIP_MAX_BACKUP_AGE', fallback: '26h' },
  maxArchiveLag: { option: '--max-archive-lag', setting: 'WALSHIP_MAX_ARCHIVE_LAG', fallback: '15m' },
  maxDrillAge: { option: '--max-drill-age', setting: 'WALSHIP_MAX_DRILL_AGE', fallback: '8d' },
  maxDumpAge: { option: '--max-dump-age', setting: 'WALSHIP_MAX_DUMP_AGE', fallback: '26h' },
  maxCopyLag: { option: '--max-copy-lag', setting: 'WALSHIP_MAX_COPY_LAG', fallback: '1h' },
} as const;

export type ThresholdOptions = Partial<Record<keyof typeof THRESHOLDS, string>>;

export function readThresholds(config: Config, options: ThresholdOptions): StatusThresholds {
  const read = (which: keyof typeof THRESHOLDS) => {
    const { option, setting, fallback } = THRESHOLDS[which];
    if (options[which] !== undefined) return parseThresholdDuration(options[which], option);
    const configured = config.get(setting);
    return configured === undefined ? parseThresholdDuration(fallback, option) : parseThresholdDuration(configured, config.origin(setting));
  };
  return {
    maxBackupAgeMs: read('maxBackupAge'),
    maxArchiveLagMs: read('maxArchiveLag'),
    maxDrillAgeMs: read('maxDrillAge'),
    maxDumpAgeMs: read('maxDumpAge'),
    maxCopyLagMs: read('maxCopyLag'),
    dumpAgeAsked: options.maxDumpAge !== undefined || config.get(THRESHOLDS.maxDumpAge.setting) !== undefined,
  };
}
