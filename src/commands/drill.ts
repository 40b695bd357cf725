/** drill [NAME|LATEST]: restore a backup into a scratch server, recover, check it, throw it away. */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { recordAttempt } from '../archive/attempts.ts';
import { reportCheck } from '../checks/verdict.ts';
import { drillDetails } from '../drill/report.ts';
import { runDrill } from '../drill/drill.ts';
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
}

export async function run({ config }: CommandContext, [backup]: string[], options: DrillOptions): Promise<number> {
  const target = chooseRecoveryTarget({ time: options.recoveryTargetTime, lsn: options.recoveryTargetLsn, name: options.recoveryTargetName });
  const storage = await openStorage(storageSpecFrom(config));
  const drill = () =>
    runDrill({
      config,
      storage,
      backup: backup ?? 'LATEST',
      target,
      scratchParent: resolve(options.scratch ?? tmpdir()),
      pgBin: options.pgBin && resolve(options.pgBin),
      checkSqlFile: options.checkSql && resolve(options.checkSql),
      keep: options.keep ?? false,
    });
  const result = await recordAttempt(storage, 'drill', drill, ({ state, summary }) => (state === 'OK' ? { result: 'success' } : { result: 'failure', error: `${state}: ${summary}` }));
  for (const line of result.kept) process.stderr.write(`drill: ${line}\n`);
  return reportCheck({ state: result.state, summary: result.summary, details: drillDetails(result.report), json: result.report }, { json: options.json });
}
