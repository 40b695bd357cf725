/** wal-verify [integrity] [timeline]: a check (exit 0 to 3) that the archive holds the WAL recovery needs. */
import { reportCheck } from '../checks/verdict.ts';
import { readIntegrityWindows } from '../config/settings.ts';
import { ConfigError } from '../errors.ts';
import { findPostgresProgram, libpqEnvironment } from '../postgres/programs.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { verifyWal, WAL_CHECKS, type WalCheck } from '../verify/wal-verify.ts';
import type { CommandContext } from './command.ts';

function readChecks(args: (string | undefined)[]): WalCheck[] {
  const named = args.filter((arg) => arg !== undefined);
  for (const check of named) {
    if (!WAL_CHECKS.includes(check as WalCheck)) throw new ConfigError(`wal-verify checks "${check}"? expected integrity, timeline or both (the default)`);
  }
  return named.length === 0 ? [...WAL_CHECKS] : WAL_CHECKS.filter((check) => named.includes(check));
}

export async function run({ config }: CommandContext, args: string[], options: { json?: boolean }): Promise<number> {
  const checks = readChecks(args);
  const windows = readIntegrityWindows(config);
  const psql = findPostgresProgram('psql');
  const storage = await openStorage(storageSpecFrom(config));
  const result = await verifyWal({
    storage,
    checks,
    windows,
    server: psql ? { psql, env: libpqEnvironment(config) } : { unavailable: 'psql is not on PATH, so the server cannot be asked' },
  });
  return reportCheck(result, options);
}
