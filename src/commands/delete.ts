/**
 * delete VERB [MODIFIER] [ARGUMENT]: WAL-G's retention verbs (retain, before,
 * everything, target, garbage) and GFS rules. Prints the plan; deletes only
 * with --confirm.
 */
import { recordAttempt } from '../archive/attempts.ts';
import { isBackupName, isDumpName } from '../archive/layout.ts';
import type { Config } from '../config/config.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { parseTimeWithOffset } from '../postgres/recovery-settings.ts';
import { deleteBackups } from '../retention/delete.ts';
import { incompleteAgeSetting, parseCount, pitrWindowSetting, retainRulesFromSettings } from '../retention/settings.ts';
import { hasRules, type KeepRules, parseDuration, PERIODS } from '../retention/gfs.ts';
import type { Boundary, RetentionRequest, Selection } from '../retention/plan.ts';
import { planJson, planText } from '../retention/render.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

interface DeleteOptions {
  confirm?: boolean;
  json?: boolean;
  after?: string;
  force?: boolean;
  keepLast?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  pitrWindow?: string;
  incompleteAge?: string;
  dumps?: boolean;
}

const VERBS = ['retain', 'before', 'everything', 'target', 'garbage'];
const KEEP_OPTIONS = { last: 'keepLast', daily: 'keepDaily', weekly: 'keepWeekly', monthly: 'keepMonthly', yearly: 'keepYearly' } as const;

/** Takes the leading modifier (FULL, FORCE, ...) if there is one; one the verb does not take is refused. */
function takeModifier(verb: string, args: string[], allowed: string[]): string | undefined {
  const [first = ''] = args;
  if (allowed.includes(first)) return args.shift();
  if (allowed.includes(first.toUpperCase())) throw new ConfigError(`delete ${verb}: write the modifier in capitals, as WAL-G takes it: ${first.toUpperCase()}`);
  if (/^[A-Z_]{2,}$/.test(first)) throw new ConfigError(`delete ${verb}: unknown modifier ${first}: use ${allowed.join(' or ')}`);
  return undefined;
}

function noMoreArguments(verb: string, args: string[], usage: string): void {
  if (args.length > 0) throw new ConfigError(`delete ${verb}: unexpected "${args.join(' ')}": the form is delete ${usage}`);
}

/** What a name argument must be: a backup's, or with --dumps a dump set's. */
const NAMES = {
  backups: { noun: 'backup', list: 'backup name (base_..., as backup-list shows)', valid: isBackupName, expected: 'base_ and a 24-hex-digit WAL segment, as backup-list shows', other: 'dump_', otherIs: 'a dump set name: add --dumps' },
  dumps: { noun: 'dump set', list: 'dump set name (dump_..., as dump-list shows)', valid: isDumpName, expected: 'dump_ and a UTC time such as dump_20240501T021500Z, as dump-list shows', other: 'base_', otherIs: 'a backup name, and --dumps deletes dump sets only: drop --dumps' },
};

function setName(text: string, verb: string, names: (typeof NAMES)[keyof typeof NAMES]): string {
  if (text.startsWith(names.other)) throw new ConfigError(`delete ${verb}: "${text}" is ${names.otherIs}`);
  if (!names.valid(text)) throw new ConfigError(`delete ${verb}: "${text}" is not a ${names.noun} name: expected ${names.expected}`);
  return text;
}

function boundary(text: string, verb: string, names: (typeof NAMES)[keyof typeof NAMES]): Boundary {
  if (text.startsWith('base_') || text.startsWith('dump_')) return { kind: 'set', name: setName(text, verb, names) };
  try {
    return { kind: 'time', text, epochMs: parseTimeWithOffset(text, `delete ${verb}`).epochMs };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`delete ${verb}: "${text}" is neither a ${names.list} nor a time with a UTC offset such as 2026-11-30 12:00:00+01`);
  }
}

/** The GFS rules from --keep-*, else from the WALSHIP_RETAIN_* settings. */
function keepRules(options: DeleteOptions, config: Config): KeepRules {
  const rules: KeepRules = {};
  for (const rule of ['last', ...PERIODS] as const) {
    const value = options[KEEP_OPTIONS[rule]];
    if (value !== undefined) rules[rule] = parseCount(value, `--keep-${rule}`);
  }
  if (options.keepWithin !== undefined) rules.within = parseDuration(options.keepWithin, '--keep-within');
  return hasRules(rules) ? rules : retainRulesFromSettings(config);
}

function parseSelection(args: string[], options: DeleteOptions, config: Config): Selection {
  const [verb, ...rest] = args;
  const names = options.dumps ? NAMES.dumps : NAMES.backups;
  const keepOptions = [
    ...Object.entries(KEEP_OPTIONS).filter(([, key]) => options[key] !== undefined).map(([rule]) => `--keep-${rule}`),
    ...(options.keepWithin !== undefined ? ['--keep-within'] : []),
  ];
  const retainOnly = [...keepOptions, ...(options.after !== undefined ? ['--after'] : [])];
  if (verb !== 'retain' && retainOnly.length > 0) throw new ConfigError(`${retainOnly[0]} is for delete retain only`);
  if (verb !== 'target' && options.force) throw new ConfigError('--force is for delete target only (delete everything takes FORCE)');
  switch (verb) {
    case 'retain': {
      takeModifier(verb, rest, ['FULL', 'FIND_FULL']);
      const countText = rest.shift();
      noMoreArguments(verb, rest, 'retain [FULL|FIND_FULL] N [--after NAME|TIME], or retain --keep-...');
      if (countText !== undefined && keepOptions.length > 0) throw new ConfigError(`delete retain: give a count or ${keepOptions[0]}, not both`);
      const rules = countText !== undefined ? { last: parseCount(countText, 'delete retain') } : keepRules(options, config);
      if (!hasRules(rules)) {
        throw new ConfigError('delete retain needs a rule: a count (retain 7), --keep-last/daily/weekly/monthly/yearly/within, or the WALSHIP_RETAIN_* settings');
      }
      return { verb, rules, after: options.after === undefined ? undefined : boundary(options.after, 'retain --after', names) };
    }
    case 'before': {
      takeModifier(verb, rest, ['FIND_FULL']);
      const target = rest.shift();
      if (target === undefined) throw new ConfigError('delete before needs a backup name or a time: delete before [FIND_FULL] NAME|TIME');
      noMoreArguments(verb, rest, 'before [FIND_FULL] NAME|TIME');
      return { verb, boundary: boundary(target, verb, names) };
    }
    case 'everything': {
      const force = takeModifier(verb, rest, ['FORCE']) !== undefined;
      noMoreArguments(verb, rest, 'everything [FORCE]');
      return { verb, force };
    }
    case 'target': {
      takeModifier(verb, rest, ['FIND_FULL']);
      const name = rest.shift();
      if (name === undefined) throw new ConfigError(`delete target needs a ${names.noun} name: delete target [FIND_FULL] NAME${options.dumps ? ' --dumps' : ''}`);
      noMoreArguments(verb, rest, 'target [FIND_FULL] NAME');
      return { verb, name: setName(name, verb, names), force: options.force ?? false };
    }
    case 'garbage': {
      const scope = takeModifier(verb, rest, ['ARCHIVES', 'BACKUPS']);
      if (scope !== undefined && options.dumps) throw new ConfigError(`delete garbage ${scope} --dumps: garbage --dumps takes no modifier (it removes the folders of incomplete dump sets); drop ${scope} or --dumps`);
      noMoreArguments(verb, rest, 'garbage [ARCHIVES|BACKUPS]');
      return { verb, scope: scope === 'ARCHIVES' ? 'archives' : scope === 'BACKUPS' ? 'backups' : 'all' };
    }
    default:
      throw new ConfigError(`delete: unknown verb "${verb ?? ''}": use one of ${VERBS.join(', ')}`);
  }
}

export async function run({ config }: CommandContext, args: string[], options: DeleteOptions): Promise<number> {
  if (options.dumps && options.pitrWindow !== undefined) throw new ConfigError('--pitr-window is about WAL, and delete --dumps never deletes WAL: drop one of them');
  const request: RetentionRequest = {
    selection: parseSelection(args, options, config),
    dumps: options.dumps ?? false,
    pitrWindow: options.dumps ? undefined : pitrWindowSetting(config, options.pitrWindow),
    incompleteAge: incompleteAgeSetting(config, options.incompleteAge),
  };
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const storage = await openStorage(storageSpecFrom(config));
  const confirm = options.confirm ?? false;
  const plan = () => deleteBackups(storage, request, { confirm, now: Date.now(), timeZone });
  // A dry run is no attempt of the job: only a delete that deletes is recorded.
  const outcome = confirm ? await recordAttempt(storage, 'delete', plan) : await plan();
  process.stdout.write(options.json ? `${JSON.stringify(planJson(outcome))}\n` : planText(outcome, timeZone));
  return ExitCode.ok;
}
