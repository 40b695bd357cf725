/**
 * Grandfather-father-son rules with restic's `forget` semantics, which DBAs
 * already know: going from the newest backup to the oldest, each rule keeps
 * the newest backup of each of its most recent N calendar periods (days, ISO
 * weeks starting on Monday, months, years) that have a backup; periods
 * without one do not count. While a rule has periods to spare, it also
 * keeps the oldest backup, as restic does, so the history kept is as long as
 * the rule allows. Rules are independent and ORed. Periods are taken in a
 * time zone (the machine's, like cron), so a backup at 00:30 local time
 * belongs to that day whatever UTC says, across daylight-saving changes.
 */
import { ConfigError } from '../errors.ts';

export const PERIODS = ['daily', 'weekly', 'monthly', 'yearly'] as const;
export type Period = (typeof PERIODS)[number];

/** A span such as 7d or 1y6m: calendar years and months, days of 24 hours, hours. */
export interface Duration {
  text: string;
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface KeepRules {
  /** The newest N backups. */
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Every backup that finished within this span before the newest one (restic's --keep-within). */
  within?: Duration;
}

/** What the rules look at: a backup's name and its finish time. */
export interface Dated {
  name: string;
  /** Milliseconds since the epoch. */
  time: number;
}

const DURATION = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$/;

/** Parses 14d, 36h, 2w, 1y6m ...; `name` (an option or setting) names it in the error. */
export function parseDuration(text: string, name: string, options: { allowZero?: boolean } = {}): Duration {
  const match = DURATION.exec(text.trim());
  if (!match || text.trim() === '') {
    throw new ConfigError(`${name} "${text}" is not a duration: write a number with a unit, such as 36h, 14d, 2w, 6m or 1y (y years, m months, w weeks, d days, h hours)`);
  }
  const [years, months, weeks, days, hours] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number, number];
  const duration = { text: text.trim(), years, months, days: weeks * 7 + days, hours };
  if (!options.allowZero && years + months + duration.days + hours === 0) throw new ConfigError(`${name} "${text}" is zero: give a span longer than that`);
  return duration;
}

/** `time` minus `duration`: years and months on the calendar (UTC), days as 24 hours. */
export function subtractDuration(time: number, duration: Duration): number {
  const date = new Date(time);
  date.setUTCFullYear(date.getUTCFullYear() - duration.years, date.getUTCMonth() - duration.months);
  return date.getTime() - (duration.days * 24 + duration.hours) * 3_600_000;
}

const calendars = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of `time` in `timeZone`. */
function localDate(time: number, timeZone: string): { year: number; month: number; day: number } {
  let format = calendars.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' });
    calendars.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(time).map((part) => [part.type, part.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
}

/** The ISO 8601 week of a calendar date: weeks start on Monday, and week 1 holds the year's first Thursday. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month - 1, day);
  const mondayBased = (new Date(date).getUTCDay() + 6) % 7;
  const thursday = new Date(date + (3 - mondayBased) * 86_400_000);
  const weekYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(weekYear, 0, 1)) / (7 * 86_400_000)) + 1;
  return { year: weekYear, week };
}

const pad = (value: number) => String(value).padStart(2, '0');

/** The period `time` falls in, as it is shown: 2026-11-30, 2026-W48, 2026-11, 2026. Labels of one kind sort in time order. */
export function periodOf(time: number, period: Period, timeZone: string): string {
  const { year, month, day } = localDate(time, timeZone);
  switch (period) {
    case 'daily':
      return `${year}-${pad(month)}-${pad(day)}`;
    case 'weekly': {
      const week = isoWeek(year, month, day);
      return `${week.year}-W${pad(week.week)}`;
    }
    case 'monthly':
      return `${year}-${pad(month)}`;
    case 'yearly':
      return String(year);
  }
}

/** Whether any rule is set. */
export function hasRules(rules: KeepRules): boolean {
  return rules.last !== undefined || rules.within !== undefined || PERIODS.some((period) => rules[period] !== undefined);
}

/**
 * Why each backup is kept, by name; backups no rule keeps are absent.
 * Reasons read "newest 3", "daily 2026-11-30", "weekly 2026-W48",
 * "monthly 2026-11", "yearly 2026", "within 7d", and "oldest (daily 7 not
 * used up)" for the oldest backup a rule keeps while it has periods to spare.
 */
export function keptByRules(backups: readonly Dated[], rules: KeepRules, timeZone: string): Map<string, string[]> {
  const kept = new Map<string, string[]>();
  const keep = (backup: Dated, reason: string) => kept.set(backup.name, [...(kept.get(backup.name) ?? []), reason]);
  const newestFirst = [...backups].sort((a, b) => b.time - a.time || b.name.localeCompare(a.name));
  const oldest = newestFirst.at(-1);

  if (rules.last !== undefined) for (const backup of newestFirst.slice(0, rules.last)) keep(backup, `newest ${rules.last}`);
  for (const period of PERIODS) {
    const count = rules[period];
    if (count === undefined) continue;
    let left = count;
    let previous: string | undefined;
    for (const backup of newestFirst) {
      if (left === 0) break;
      const label = periodOf(backup.time, period, timeZone);
      if (label !== previous) keep(backup, `${period} ${label}`);
      else if (backup === oldest) keep(backup, `oldest (${period} ${count} not used up)`);
      else continue;
      previous = label;
      left--;
    }
  }
  if (rules.within !== undefined && newestFirst.length > 0) {
    const since = subtractDuration(newestFirst[0]!.time, rules.within);
    for (const backup of newestFirst) if (backup.time > since) keep(backup, `within ${rules.within.text}`);
  }
  return kept;
}
