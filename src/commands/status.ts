/** status: are my backups OK? A check (exit 0 to 3) over the archive and, when reached, the server; --prometheus for node_exporter. */
import { CHECK_EXIT_CODES, reportCheck, verdictLine } from '../checks/verdict.ts';
import { COPIES_SETTING, readCopyPaths, storageConfigFile } from '../config/copies.ts';
import { readIntegrityWindows } from '../config/settings.ts';
import { WalshipError } from '../errors.ts';
import { findPostgresProgram, libpqEnvironment } from '../postgres/programs.ts';
import { configuredRetention } from '../retention/settings.ts';
import { exposition, writeExposition } from '../status/prometheus.ts';
import { statusMetrics, type StatusReport, walshipStatus } from '../status/status.ts';
import { readThresholds, type ThresholdOptions } from '../status/thresholds.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import type { CommandContext } from './command.ts';

interface StatusOptions extends ThresholdOptions {
  json?: boolean;
  prometheus?: string;
}

export async function run({ config }: CommandContext, _args: string[], options: StatusOptions): Promise<number> {
  const thresholds = readThresholds(config, options);
  const windows = readIntegrityWindows(config);
  const retention = configuredRetention(config);
  const psql = findPostgresProgram('psql');
  let report: StatusReport;
  try {
    const storage = await openStorage(storageSpecFrom(config));
    report = await walshipStatus({
      storage,
      server: psql ? { psql, env: libpqEnvironment(config) } : { unavailable: 'psql is not on PATH, so the server cannot be asked' },
      thresholds,
      windows,
      retention,
      copies: readCopyPaths(config).map((path) => {
        const spec = () => storageSpecFrom(storageConfigFile(path, COPIES_SETTING));
        return { path, open: () => openStorage(spec()), isOffHost: () => spec().backend !== 'file' };
      }),
    });
  } catch (error) {
    // The textfile must not keep saying OK while nothing can be checked.
    if (options.prometheus !== undefined && options.prometheus !== '-' && error instanceof WalshipError) {
      await writeExposition(options.prometheus, await exposition(statusMetrics(CHECK_EXIT_CODES.UNKNOWN, Date.now())));
    }
    throw error;
  }
  if (options.prometheus !== undefined) await writeExposition(options.prometheus, await exposition(report.metrics));
  if (options.prometheus === '-') {
    // stdout holds the exposition alone, for a parser; the verdict goes to stderr.
    process.stderr.write(`${verdictLine(report.result.state, report.result.summary)}\n`);
    return CHECK_EXIT_CODES[report.result.state];
  }
  return reportCheck(report.result, options);
}
