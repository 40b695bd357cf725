/** drill [NAME|LATEST]: restore a backup into a scratch server, recover, check it, throw it away; drill --dump [NAME|LATEST]: the same for a dump set. */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { recordAttempt } from '../archive/attempts.ts';
import { reportCheck } from '../checks/verdict.ts';
import { runDumpDrill } from '../drill/dump-drill.ts';
import { dumpDrillDetails, drillDetails } from '../drill/report.ts';
import { runDrill } from '../drill/drill.ts';
import { ConfigError } from '../errors.ts';
import { chooseRecoveryTarget } from '../postgres/recovery-settings.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

interface DrillOptions {
  recoveryTargetTime?: string;
  recoveryTargetLsn?: string;
  recoveryTargetName?: string;
  scratch?: string;
  pgBin?: string;
  checkSql?: string;
  keep?: boolean;
  json?: boolean;
  /** --dump alone is true: the newest dump set. */
  dump?: string | true;
}

export async function run({ config }: CommandContext, [backup]: string[], options: DrillOptions): Promise<number> {
  const storage = await openStorage(storageSpecFrom(config));
  const common = {
    config,
    storage,
    scratchParent: resolve(options.scratch ?? tmpdir()),
    pgBin: options.pgBin && resolve(options.pgBin),
    checkSqlFile: options.checkSql && resolve(options.checkSql),
    keep: options.keep ?? false,
  };
  const judge = ({ state, summary }: { state: string; summary: string }) => (state === 'OK' ? { result: 'success' as const } : { result: 'failure' as const, error: `${state}: ${summary}` });
  if (options.dump !== undefined) {
    if (backup !== undefined) throw new ConfigError(`drill --dump drills a dump set, not backup ${backup}: give the dump set's name to --dump (drill --dump ${backup}), or drop --dump`);
    const targets = [options.recoveryTargetTime && '--recovery-target-time', options.recoveryTargetLsn && '--recovery-target-lsn', options.recoveryTargetName && '--recovery-target-name'].filter(Boolean);
    if (targets.length > 0) throw new ConfigError(`${targets[0]} is for backup drills: a dump set restores as of its snapshot, so drop it or --dump`);
    const dump = options.dump === true ? 'LATEST' : options.dump;
    const result = await recordAttempt(storage, 'drill', () => runDumpDrill({ ...common, dump }), judge);
    for (const line of result.kept) process.stderr.write(`drill: ${line}\n`);
    return reportCheck({ state: result.state, summary: result.summary, details: dumpDrillDetails(result.report), json: result.report }, { json: options.json });
  }
  const target = chooseRecoveryTarget({ time: options.recoveryTargetTime, lsn: options.recoveryTargetLsn, name: options.recoveryTargetName });
  const result = await recordAttempt(storage, 'drill', () => runDrill({ ...common, backup: backup ?? 'LATEST', target }), judge);
  for (const line of result.kept) process.stderr.write(`drill: ${line}\n`);
  return reportCheck({ state: result.state, summary: result.summary, details: drillDetails(result.report), json: result.report }, { json: options.json });
}
