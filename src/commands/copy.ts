/** copy [--from FILE] [--to FILE] [--backup NAME|--wal|--all] [--prune]: bring copies of the archive up to date. */
import { recordAttempt } from '../archive/attempts.ts';
import { COPIES_SETTING, readCopyPaths, storageConfigFile } from '../config/copies.ts';
import { readUploadConcurrency } from '../config/settings.ts';
import { type CopySelection, copyToTargets, summaryLine, type TargetOutcome } from '../copy/copy.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

interface CopyOptions {
  from?: string;
  to?: string;
  backup?: string;
  backupName?: string;
  wal?: boolean;
  all?: boolean;
  withoutHistory?: boolean;
  prune?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

function readSelection(options: CopyOptions): CopySelection {
  const backup = options.backup ?? options.backupName;
  const chosen = [backup !== undefined && '--backup', options.wal && '--wal', options.all && '--all'].filter(Boolean);
  if (chosen.length > 1) throw new ConfigError(`${chosen.join(' and ')} contradict each other: give one (--all, the default, copies everything)`);
  if (options.backup !== undefined && options.backupName !== undefined) throw new ConfigError('--backup and --backup-name name the same thing: give one');
  if (backup !== undefined) return { kind: 'backup', name: backup };
  if (options.wal) {
    if (options.withoutHistory) throw new ConfigError('--wal with --without-history would copy nothing: drop one');
    return { kind: 'wal' };
  }
  return { kind: 'all' };
}

export async function run({ config }: CommandContext, _args: string[], options: CopyOptions): Promise<number> {
  const selection = readSelection(options);
  if (options.prune && selection.kind === 'backup') throw new ConfigError('--prune follows the source as a whole: use it with --all or --wal, not --backup');
  const [targets, namedBy] = options.to ? [[options.to], '--to'] : [readCopyPaths(config), COPIES_SETTING];
  if (targets.length === 0) throw new ConfigError('no copy to bring up to date: set WALSHIP_COPIES to the config files of the copies, or name one with --to FILE');
  const sourceSpec = storageSpecFrom(options.from ? storageConfigFile(options.from, '--from') : config);
  const source = await openStorage(sourceSpec);
  const copy = () => copyToTargets({
    source,
    sourceIdentity: sourceSpec.identity,
    targets: targets.map((path) => ({
      path,
      open: async () => {
        const spec = storageSpecFrom(storageConfigFile(path, namedBy));
        return { storage: await openStorage(spec), identity: spec.identity };
      },
    })),
    selection,
    withoutHistory: options.withoutHistory ?? false,
    prune: options.prune ?? false,
    dryRun: options.dryRun ?? false,
    concurrency: readUploadConcurrency(config),
  });
  // The attempt is recorded in the source, where status finds the last copy job; a dry run is no attempt.
  const { outcomes, failed } = options.dryRun
    ? await copy()
    : await recordAttempt(source, 'copy', copy, (result) => ({
      ...(result.failed ? { result: 'failure', error: firstProblem(result.outcomes) } : { result: 'success' }),
      ...(selection.kind === 'all' && !options.withoutHistory && { upToDate: result.outcomes.filter(isComplete).map((outcome) => outcome.path) }),
    }));
  if (options.json) process.stdout.write(`${JSON.stringify({ targets: outcomes }, null, 2)}\n`);
  else if (options.dryRun) for (const outcome of outcomes) if ('report' in outcome) process.stdout.write(`${summaryLine(outcome.report)}\n`);
  return failed ? ExitCode.failure : ExitCode.ok;
}

/** A target that now holds all the source held when the copy started. */
function isComplete(outcome: TargetOutcome): boolean {
  return !('error' in outcome) && outcome.report.problems.length === 0;
}

/** The attempt record's one line for a failed copy: the first target's problem. */
function firstProblem(outcomes: TargetOutcome[]): string {
  for (const outcome of outcomes) {
    if ('error' in outcome) return `${outcome.path}: ${outcome.error}`;
    if (outcome.report.problems.length > 0) return `${outcome.path}: ${outcome.report.problems[0]}`;
  }
  return 'a target failed';
}
