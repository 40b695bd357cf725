/**
 * The retention policy configured in settings: the rules of a bare
 * `delete retain` (WALSHIP_RETAIN_*), WALSHIP_PITR_WINDOW and
 * WALSHIP_INCOMPLETE_BACKUP_AGE. `delete` reads them when the command line
 * gives no rule; `status` reports what they would delete now.
 */
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { type Duration, hasRules, type KeepRules, parseDuration, PERIODS } from './gfs.ts';
import type { RetentionRequest } from './plan.ts';

/** The settings a nightly `delete retain` takes its rules from, by rule. */
const RETAIN_SETTINGS = { last: 'WALSHIP_RETAIN_LAST', daily: 'WALSHIP_RETAIN_DAILY', weekly: 'WALSHIP_RETAIN_WEEKLY', monthly: 'WALSHIP_RETAIN_MONTHLY', yearly: 'WALSHIP_RETAIN_YEARLY' } as const;
const DEFAULT_INCOMPLETE_AGE = '24h';

/** A count of backups or periods: a whole number of at least 1. */
export function parseCount(text: string, name: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new ConfigError(`${name} "${text}" is not a count: give a whole number of at least 1`);
  }
  return Number(text);
}

/** The GFS rules of the WALSHIP_RETAIN_* settings (none when none is set). */
export function retainRulesFromSettings(config: Config): KeepRules {
  const rules: KeepRules = {};
  for (const rule of ['last', ...PERIODS] as const) {
    const value = config.get(RETAIN_SETTINGS[rule]);
    if (value !== undefined) rules[rule] = parseCount(value, config.origin(RETAIN_SETTINGS[rule]));
  }
  const within = config.get('WALSHIP_RETAIN_WITHIN');
  if (within !== undefined) rules.within = parseDuration(within, config.origin('WALSHIP_RETAIN_WITHIN'));
  return rules;
}

/** WALSHIP_PITR_WINDOW, or `option` (named `optionName`) when given. */
export function pitrWindowSetting(config: Config, option?: string, optionName = '--pitr-window'): Duration | undefined {
  const text = option ?? config.get('WALSHIP_PITR_WINDOW');
  return text === undefined ? undefined : parseDuration(text, option !== undefined ? optionName : config.origin('WALSHIP_PITR_WINDOW'));
}

/** WALSHIP_INCOMPLETE_BACKUP_AGE (default 24h), or `option` (named `optionName`) when given. */
export function incompleteAgeSetting(config: Config, option?: string, optionName = '--incomplete-age'): Duration {
  const text = option ?? config.get('WALSHIP_INCOMPLETE_BACKUP_AGE');
  return parseDuration(text ?? DEFAULT_INCOMPLETE_AGE, option !== undefined ? optionName : config.origin('WALSHIP_INCOMPLETE_BACKUP_AGE'), { allowZero: true });
}

/** The bare `delete retain` the settings configure; undefined when no WALSHIP_RETAIN_* rule is set. */
export function configuredRetention(config: Config): RetentionRequest | undefined {
  const rules = retainRulesFromSettings(config);
  if (!hasRules(rules)) return undefined;
  return { selection: { verb: 'retain', rules }, pitrWindow: pitrWindowSetting(config), incompleteAge: incompleteAgeSetting(config) };
}
