// The retention policy on generated histories: two years of backups, several
// a day, with gaps of weeks, some permanent, in several time zones and
// policies. The planner is a pure function of (backups, policy, now, time
// zone), and every case is checked against the definitions, computed here
// another way: for each GFS rule (restic's forget semantics), the kept
// backups are exactly the newest of each of its most recent N periods that
// have backups, plus the oldest backup while the rule has periods to spare;
// the newest and the permanent backups are always kept; nothing else is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { type Dated, isoWeek, type KeepRules, keptByRules, parseDuration, type Period, periodOf, PERIODS, subtractDuration } from '../../src/retention/gfs.ts';
import { planBackups } from '../../src/retention/plan.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham'];

/** A small seeded generator (mulberry32), so a failing case can be run again. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Two years of backups: 0 to 4 a day at random hours, with gaps of one to six weeks now and then. */
function history(next: () => number): Dated[] {
  const backups: Dated[] = [];
  let day = Date.UTC(2024, 0, 1) + Math.floor(next() * 365) * DAY;
  const end = day + 730 * DAY;
  while (day < end) {
    if (next() < 0.02) day += Math.floor(7 + next() * 35) * DAY;
    const count = Math.floor(next() * 5);
    for (let index = 0; index < count; index++) {
      const time = day + Math.floor(next() * DAY);
      backups.push({ name: `backup-${backups.length}`, time });
    }
    day += DAY;
  }
  return backups;
}

function policy(next: () => number): KeepRules {
  const rules: KeepRules = {};
  const maybe = (max: number) => (next() < 0.5 ? 1 + Math.floor(next() * max) : undefined);
  rules.last = maybe(5);
  rules.daily = maybe(14);
  rules.weekly = maybe(8);
  rules.monthly = maybe(24);
  rules.yearly = maybe(4);
  if (next() < 0.3) rules.within = parseDuration(`${1 + Math.floor(next() * 30)}d`, 'test');
  for (const key of Object.keys(rules) as (keyof KeepRules)[]) if (rules[key] === undefined) delete rules[key];
  return Object.keys(rules).length > 0 ? rules : { daily: 7 };
}

/** A sentinel for a generated backup; the planner reads the name, finish time, permanence and cluster. */
function sentinel(backup: Dated, permanent: boolean): BackupSentinel {
  return { BackupName: backup.name, FinishTime: new Date(backup.time).toISOString(), IsPermanent: permanent, SystemIdentifier: '7000000000000000001' } as BackupSentinel;
}

const newestFirst = (backups: readonly Dated[]) => [...backups].sort((a, b) => b.time - a.time || b.name.localeCompare(a.name));

/** The backups a period rule keeps, from its definition: group by period, newest of each of the most recent N, and the oldest if periods are left. */
function expectedByPeriod(backups: readonly Dated[], period: Period, count: number, timeZone: string): Set<string> {
  const newestOfPeriod = new Map<string, Dated>();
  for (const backup of newestFirst(backups)) {
    const label = periodOf(backup.time, period, timeZone);
    if (!newestOfPeriod.has(label)) newestOfPeriod.set(label, backup);
  }
  const recent = [...newestOfPeriod.keys()].sort().reverse().slice(0, count);
  const kept = new Set(recent.map((label) => newestOfPeriod.get(label)!.name));
  if (newestOfPeriod.size < count) kept.add(newestFirst(backups).at(-1)!.name);
  return kept;
}

function keptBy(kept: Map<string, string[]>, matches: (reason: string) => boolean): Set<string> {
  return new Set([...kept].filter(([, reasons]) => reasons.some(matches)).map(([name]) => name));
}

describe('the retention policy (GFS rules with restic forget semantics)', () => {
  it('keeps exactly what each rule defines, ORed, the newest and the permanent backups, on generated histories in several time zones', () => {
    let cases = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const next = random(seed);
      const backups = history(next);
      const rules = policy(next);
      const timeZone = ZONES[seed % ZONES.length]!;
      const context = `seed ${seed}, ${timeZone}, rules ${JSON.stringify(rules)}`;
      const kept = keptByRules(backups, rules, timeZone);
      const ordered = newestFirst(backups);

      for (const period of PERIODS) {
        const count = rules[period];
        const byRule = keptBy(kept, (reason) => reason.startsWith(`${period} `) || reason.startsWith(`oldest (${period} `));
        assert.deepEqual(byRule, count === undefined ? new Set() : expectedByPeriod(backups, period, count, timeZone), `${period}: ${context}`);
      }
      const byLast = keptBy(kept, (reason) => reason.startsWith('newest '));
      assert.deepEqual(byLast, new Set(ordered.slice(0, rules.last ?? 0).map((backup) => backup.name)), `last: ${context}`);
      const byWithin = keptBy(kept, (reason) => reason.startsWith('within '));
      const since = rules.within ? subtractDuration(ordered[0]!.time, rules.within) : Infinity;
      assert.deepEqual(byWithin, new Set(ordered.filter((backup) => backup.time > since).map((backup) => backup.name)), `within: ${context}`);

      // The planner keeps what the rules keep, the newest and every permanent backup, and deletes the rest.
      const permanent = new Set(backups.filter(() => next() < 0.03).map((backup) => backup.name));
      const decisions = planBackups(backups.map((backup) => sentinel(backup, permanent.has(backup.name))), { verb: 'retain', rules }, { now: ordered[0]!.time + DAY, timeZone });
      assert.deepEqual(decisions.map((decision) => decision.backup.BackupName), [...ordered].reverse().map((backup) => backup.name), `oldest first: ${context}`);
      assert.equal(decisions.at(-1)!.action, 'keep', `the newest is kept: ${context}`);
      for (const decision of decisions) {
        const name = decision.backup.BackupName;
        const expected = kept.has(name) || permanent.has(name) || name === ordered[0]!.name ? 'keep' : 'delete';
        assert.equal(decision.action, expected, `${name}: ${context}`);
        if (permanent.has(name)) assert.ok(decision.reasons.includes('permanent'), context);
        assert.ok(decision.reasons.length > 0, context);
      }

      // Nothing else is kept, and whatever is kept has a reason.
      const union = new Set([...kept.keys()]);
      assert.ok([...union].every((name) => (kept.get(name) ?? []).length > 0));
      for (const name of union) assert.ok(backups.some((backup) => backup.name === name), context);
      // The newest backup is kept by every rule that is set.
      assert.ok(kept.has(ordered[0]!.name), `the newest is kept: ${context}`);
      // A period rule names the period of the backup it keeps.
      for (const [name, reasons] of kept) {
        const backup = backups.find((candidate) => candidate.name === name)!;
        for (const reason of reasons) {
          const match = /^(daily|weekly|monthly|yearly) (\S+)$/.exec(reason);
          if (match) assert.equal(match[2], periodOf(backup.time, match[1] as Period, timeZone), context);
        }
      }
      cases++;
    }
    assert.equal(cases, 60);
  });

  it('counts only periods that have a backup: a gap of weeks takes none of the count', () => {
    const at = (iso: string) => Date.parse(iso);
    const backups: Dated[] = [
      { name: 'nov-30', time: at('2026-11-30T02:00:00Z') },
      { name: 'nov-29-late', time: at('2026-11-29T23:00:00Z') },
      { name: 'nov-29-early', time: at('2026-11-29T01:00:00Z') },
      // three weeks without a backup
      { name: 'nov-07', time: at('2026-11-07T02:00:00Z') },
      { name: 'nov-06', time: at('2026-11-06T02:00:00Z') },
    ];
    const kept = keptByRules(backups, { daily: 3 }, 'UTC');
    assert.deepEqual(Object.fromEntries(kept), { 'nov-30': ['daily 2026-11-30'], 'nov-29-late': ['daily 2026-11-29'], 'nov-07': ['daily 2026-11-07'] });
    // With periods to spare, the oldest backup is kept too, as restic does.
    const spare = keptByRules(backups, { daily: 9, weekly: 2 }, 'UTC');
    assert.deepEqual(spare.get('nov-06'), ['daily 2026-11-06']);
    assert.deepEqual(spare.get('nov-30'), ['daily 2026-11-30', 'weekly 2026-W49']);
    assert.deepEqual(spare.get('nov-29-late'), ['daily 2026-11-29', 'weekly 2026-W48']);
    assert.equal(spare.get('nov-07')?.includes('weekly 2026-W45'), false);
    const monthly = keptByRules(backups, { monthly: 3 }, 'UTC');
    assert.deepEqual(Object.fromEntries(monthly), { 'nov-30': ['monthly 2026-11'], 'nov-06': ['oldest (monthly 3 not used up)'] });
  });

  it('takes days in the time zone across daylight-saving changes, and ISO weeks across week 53', () => {
    // Berlin: a backup at 00:30 local time belongs to that day, whatever the date in UTC.
    assert.equal(periodOf(Date.parse('2026-03-28T23:30:00Z'), 'daily', 'Europe/Berlin'), '2026-03-29'); // 00:30 CET
    assert.equal(periodOf(Date.parse('2026-03-29T22:30:00Z'), 'daily', 'Europe/Berlin'), '2026-03-30'); // 00:30 CEST, the day clocks went forward
    assert.equal(periodOf(Date.parse('2026-10-25T00:30:00Z'), 'daily', 'Europe/Berlin'), '2026-10-25'); // 02:30 CEST
    assert.equal(periodOf(Date.parse('2026-10-25T01:30:00Z'), 'daily', 'Europe/Berlin'), '2026-10-25'); // 02:30 CET, an hour later
    assert.equal(periodOf(Date.parse('2026-10-25T23:30:00Z'), 'daily', 'Europe/Berlin'), '2026-10-26'); // 00:30 CET
    assert.equal(periodOf(Date.parse('2026-11-01T05:30:00Z'), 'daily', 'America/New_York'), '2026-11-01'); // 01:30 EDT
    assert.equal(periodOf(Date.parse('2026-11-01T06:30:00Z'), 'daily', 'America/New_York'), '2026-11-01'); // 01:30 EST
    assert.equal(periodOf(Date.parse('2026-04-04T13:15:00Z'), 'daily', 'Australia/Lord_Howe'), '2026-04-05'); // half an hour of DST
    // The two 02:30 backups of Berlin's long night are one day: daily 1 keeps the later one.
    const night = [
      { name: 'cest', time: Date.parse('2026-10-25T00:30:00Z') },
      { name: 'cet', time: Date.parse('2026-10-25T01:30:00Z') },
    ];
    assert.deepEqual([...keptByRules(night, { daily: 1 }, 'Europe/Berlin').keys()], ['cet']);
    // The Monday of a week that straddles the year, and the weeks 53 of 2020 and 2026.
    assert.deepEqual(isoWeek(2025, 12, 29), { year: 2026, week: 1 });
    assert.deepEqual(isoWeek(2026, 12, 31), { year: 2026, week: 53 });
    assert.deepEqual(isoWeek(2027, 1, 3), { year: 2026, week: 53 });
    assert.deepEqual(isoWeek(2027, 1, 4), { year: 2027, week: 1 });
    assert.deepEqual(isoWeek(2020, 12, 31), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
    assert.equal(periodOf(Date.parse('2027-01-02T12:00:00Z'), 'weekly', 'UTC'), '2026-W53');
    assert.equal(periodOf(Date.parse('2027-01-03T23:30:00Z'), 'weekly', 'Europe/Berlin'), '2027-W01'); // Monday 00:30 in Berlin
    assert.equal(periodOf(Date.parse('2027-01-03T23:30:00Z'), 'monthly', 'America/New_York'), '2027-01');
    assert.equal(periodOf(Date.parse('2026-12-31T23:30:00Z'), 'yearly', 'Europe/Berlin'), '2027');
    // Weeks 53 and 1 are two periods: weekly 2 keeps one backup of each.
    const turn = [
      { name: 'w53', time: Date.parse('2027-01-02T12:00:00Z') },
      { name: 'w53-earlier', time: Date.parse('2026-12-28T12:00:00Z') },
      { name: 'w01', time: Date.parse('2027-01-04T12:00:00Z') },
    ];
    assert.deepEqual(Object.fromEntries(keptByRules(turn, { weekly: 2 }, 'UTC')), { w01: ['weekly 2027-W01'], w53: ['weekly 2026-W53'] });
    // ISO weeks agree with a day-by-day count from a known Monday for ten years.
    let week = 1;
    let weekYear = 2016;
    for (let day = Date.UTC(2016, 0, 4); day < Date.UTC(2026, 0, 1); day += DAY) {
      const date = new Date(day);
      if (date.getUTCDay() === 1 && day !== Date.UTC(2016, 0, 4)) {
        week++;
        // A new week year starts on the Monday of the week holding January 4.
        const thursday = new Date(day + 3 * DAY);
        if (thursday.getUTCFullYear() !== weekYear && thursday.getUTCMonth() === 0) [weekYear, week] = [thursday.getUTCFullYear(), 1];
      }
      assert.deepEqual(isoWeek(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()), { year: weekYear, week });
    }
  });

  it('reads durations and refuses what is not one', () => {
    assert.deepEqual(parseDuration('1y6m', '--keep-within'), { text: '1y6m', years: 1, months: 6, days: 0, hours: 0 });
    assert.deepEqual(parseDuration('2w3d', '--keep-within'), { text: '2w3d', years: 0, months: 0, days: 17, hours: 0 });
    assert.equal(subtractDuration(Date.parse('2026-03-31T12:00:00Z'), parseDuration('1m', 'x')), Date.parse('2026-03-03T12:00:00Z'));
    assert.equal(subtractDuration(Date.parse('2026-11-30T12:00:00Z'), parseDuration('36h', 'x')), Date.parse('2026-11-29T00:00:00Z'));
    assert.deepEqual(parseDuration('0h', '--incomplete-age', { allowZero: true }).hours, 0);
    for (const bad of ['', '14', 'd', '1.5d', '-3d', '3 days', '14D', '1d1y']) {
      assert.throws(() => parseDuration(bad, '--keep-within'), /^ConfigError: --keep-within ".*" is not a duration: write a number with a unit/, bad);
    }
    assert.throws(() => parseDuration('0d', '--keep-within'), /--keep-within "0d" is zero/);
  });
});
