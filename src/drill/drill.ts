/**
 * walship drill: a real restore, started and checked, then thrown away.
 *
 *   choose the backup -> restore it into a scratch directory as backup-fetch
 *   does -> start it on a socket of its own, replaying the archive through
 *   this walship's wal-fetch -> judge where recovery ended against what the
 *   archive holds -> run the checks -> stop the server, remove the directory
 *   -> store the report (the drill's only write to storage but its attempt's record, which the command makes).
 *
 * The scratch server never archives (archive_mode = off): the history file
 * of the timeline it promotes to stays in its own pg_wal.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { BackupSentinel } from '../archive/backups.ts';
import { ArchiveCatalog, type RecoveryReach } from '../archive/catalog.ts';
import { storeDrillReport } from '../archive/drills.ts';
import { chooseBackup } from '../archive/select.ts';
import { restoreBackup } from '../backup/restore.ts';
import { type CheckState, worstState } from '../checks/verdict.ts';
import type { Config } from '../config/config.ts';
import { readDownloadConcurrency } from '../config/settings.ts';
import { ConfigError, describeError, WalshipError } from '../errors.ts';
import { isMissing } from '../fs/missing.ts';
import type { PostgresCluster } from '../postgres/cluster.ts';
import { formatLsn, parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { serverProgramDirectory } from '../postgres/programs.ts';
import { describeRecoveryTarget, type RecoveryTarget } from '../postgres/recovery-settings.ts';
import { type SqlStatement, splitSqlScript } from '../postgres/sql-script.ts';
import { formatBytes } from '../progress/progress.ts';
import { StorageRequestError } from '../storage/requests.ts';
import type { Storage } from '../storage/storage.ts';
import { interruptible, unlessAborted } from '../util/process.ts';
import { VERSION } from '../version.ts';
import { spoolOf } from '../wal/spool.ts';
import { checkConnections, checkIndexes, type CheckOutcome, readEveryTable, runCheckSql } from './checks.ts';
import { awaitRecovery, judgeRecovery, readRecoveryEnd, type RecoveryEnd } from './recovery.ts';
import { type CheckResult, type DrillReport, drillVerdict, round } from './report.ts';
import { DRILL_PROGRAMS, interrupted, Scratch } from './scratch.ts';

export interface DrillSettings {
  config: Config;
  /** The configured storage, opened. */
  storage: Storage;
  /** A backup name, or LATEST. */
  backup: string;
  target: RecoveryTarget | undefined;
  /** The directory to make the scratch directory in (absolute). */
  scratchParent: string;
  /** --pg-bin: where PostgreSQL's programs are; else found for the backup's version. */
  pgBin: string | undefined;
  checkSqlFile: string | undefined;
  /** Leave the restored cluster (stopped) in place. */
  keep: boolean;
}

export interface DrillResult {
  state: CheckState;
  summary: string;
  report: DrillReport & { report_key?: string };
  /** With --keep: how to start and remove the restored cluster. */
  kept: string[];
}

/** The scratch server never archives, whatever the restored configuration says. */
const NO_ARCHIVING = { off: true, reason: 'a restore drill: the scratch server must never archive' };

/** A drill runs PostgreSQL, which refuses root. */
export function refuseRoot(): void {
  if (process.getuid?.() === 0) {
    throw new ConfigError('walship drill runs PostgreSQL, which refuses to run as root: run it as the PostgreSQL OS user, for example sudo -u postgres walship drill ...');
  }
}

export async function runDrill(settings: DrillSettings): Promise<DrillResult> {
  refuseRoot();
  const checkSql = settings.checkSqlFile === undefined ? undefined : await readCheckSql(settings.checkSqlFile);
  const { storage } = settings;
  const startedAt = new Date();
  // What recovery must reach is what the archive holds now, before the scratch server asks for any of it.
  const catalog = await ArchiveCatalog.load(storage);
  const sentinel = await chooseBackup(storage, settings.backup, settings.target, catalog);
  const chosenAt = performance.now();
  const binDirectory = await serverProgramDirectory(settings.pgBin, Math.floor(sentinel.PgVersion / 10000), DRILL_PROGRAMS);
  const scratch = await Scratch.create(settings.scratchParent, { name: `backup ${sentinel.BackupName}`, bytes: sentinel.UncompressedSize });

  const checks: CheckResult[] = [];
  const facts = {
    restoreSeconds: null as number | null,
    replaySeconds: null as number | null,
    rtoSeconds: null as number | null,
    segmentsReplayed: 0,
    end: undefined as RecoveryEnd | undefined,
    reach: undefined as RecoveryReach | undefined,
    postgresVersion: null as string | null,
    dataChecksums: null as boolean | null,
  };
  const record = (name: string, { state, message }: CheckOutcome, seconds: number) => checks.push({ name, state, seconds: round(seconds), message });
  const timed = async (name: string, work: () => Promise<CheckOutcome>) => {
    const started = performance.now();
    const outcome = await work();
    record(name, outcome, (performance.now() - started) / 1000);
    return outcome;
  };

  let kept: string[] = [];
  await interruptible(async (signal) => {
    try {
      const restored = await timed('restore', () => restore(storage, settings, sentinel, scratch, signal));
      facts.restoreSeconds = checks.at(-1)!.seconds;
      if (restored.state !== 'OK') return;

      const replayStarted = performance.now();
      const { server, dataChecksums } = await scratch.startServer(binDirectory);
      facts.dataChecksums = dataChecksums;
      const fromLsn = parseLsn(sentinel.LSN);
      const reachable = catalog.recoveryReach(sentinel.Timeline, fromLsn).last;
      const expectedSegments = reachable ? Number(reachable.segment - segmentNumberOfLsn(fromLsn, catalog.segmentSize)) + 1 : undefined;
      const outcome = await awaitRecovery(server, { segmentSize: catalog.segmentSize, expectedSegments, signal });
      const replaySeconds = (performance.now() - replayStarted) / 1000;
      facts.segmentsReplayed = outcome.restoredSegments;
      const consistentAt = outcome.consistentAt === undefined ? '' : ` at ${formatLsn(outcome.consistentAt)}`;
      const consistent = outcome.ready || outcome.consistentAt !== undefined;
      record(
        'start',
        outcome.ready || outcome.consistentAt !== undefined
          ? { state: 'OK', message: `the server started and reached a consistent state${consistentAt}${outcome.ready ? '; promoted' : ''}` }
          : { state: 'CRITICAL', message: `the server did not reach a consistent state: ${outcome.reason}` },
        replaySeconds,
      );
      if (!consistent) return;
      if (outcome.ready) {
        facts.replaySeconds = round(replaySeconds);
        facts.rtoSeconds = round((performance.now() - chosenAt) / 1000);
        facts.end = await unlessAborted(signal, readRecoveryEnd(server, sentinel.Timeline), interrupted);
      }
      const judgement = judgeRecovery(catalog, { fromLsn, timeline: sentinel.Timeline, target: settings.target, outcome, end: facts.end });
      facts.reach = judgement.reach;
      record('recovery', judgement, 0);
      if (!outcome.ready) return;

      facts.postgresVersion = await unlessAborted(signal, server.sql('SHOW server_version'), interrupted);
      await runChecks(server, { checkSql, dataChecksums, timed, signal });
    } finally {
      kept = await scratch.cleanUp(settings.keep);
    }
  });

  const finishedAt = new Date();
  const lastTransaction = facts.end?.lastTransaction;
  const partial = {
    backup: sentinel.BackupName,
    target: settings.target ? describeRecoveryTarget(settings.target) : null,
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    host: hostname(),
    storage: storage.location,
    walship_version: VERSION,
    postgres_version: facts.postgresVersion,
    rto_seconds: facts.rtoSeconds,
    restore_seconds: facts.restoreSeconds,
    replay_seconds: facts.replaySeconds,
    segments_replayed: facts.segmentsReplayed,
    checks_seconds: round(checks.filter((check) => !['restore', 'start', 'recovery'].includes(check.name)).reduce((sum, check) => sum + check.seconds, 0)),
    recovery_timeline: facts.end?.timeline ?? null,
    recovery_end_lsn: facts.end ? formatLsn(facts.end.lsn) : null,
    archive_reach_segment: facts.reach?.last?.name ?? null,
    first_missing_segment: facts.reach?.missing?.name ?? null,
    recovery_point: lastTransaction?.toISOString() ?? null,
    data_age_seconds: lastTransaction ? round((finishedAt.getTime() - lastTransaction.getTime()) / 1000) : null,
    data_checksums: facts.dataChecksums,
    checks,
  };
  const verdict = drillVerdict(partial);
  const report: DrillReport = { ...partial, result: verdict.state, summary: verdict.summary };
  return { ...(await storingReport(verdict, report, () => storeDrillReport(storage, report))), kept };
}

/** The verdict and the report with its key once stored; a report that cannot be stored makes the verdict at least WARNING. */
export async function storingReport<R extends object>(
  verdict: { state: CheckState; summary: string },
  report: R,
  store: () => Promise<string>,
): Promise<{ state: CheckState; summary: string; report: R & { report_key?: string } }> {
  try {
    return { ...verdict, report: { ...report, report_key: await store() } };
  } catch (error) {
    if (!(error instanceof WalshipError)) throw error;
    return { state: worstState([verdict.state, 'WARNING']), summary: `${verdict.summary}; the report could not be stored: ${error.message}`, report };
  }
}

/** The files restored as backup-fetch restores them, with recovery set up to end of the archive or the target, then promote. */
async function restore(storage: Storage, settings: DrillSettings, sentinel: BackupSentinel, scratch: Scratch, signal: AbortSignal): Promise<CheckOutcome> {
  try {
    await restoreBackup({
      storage,
      downloadConcurrency: readDownloadConcurrency(settings.config),
      destination: scratch.dataDirectory,
      backup: sentinel,
      force: false,
      recovery: {
        target: settings.target,
        action: settings.target ? 'promote' : undefined,
        standby: false,
        archiving: NO_ARCHIVING,
        spool: spoolOf(scratch.dataDirectory, scratch.spool),
        // restore_command's settings: this archive, and the scratch spool for prefetched WAL.
        config: settings.config.with({ WALSHIP_SPOOL_DIR: scratch.spool }),
      },
    });
  } catch (error) {
    if (signal.aborted) throw interrupted();
    // Storage out of reach is no verdict on the backup: the drill could not check (UNKNOWN).
    if (error instanceof StorageRequestError || !(error instanceof WalshipError)) throw error;
    return { state: 'CRITICAL', message: `the backup cannot be restored: ${error.message}` };
  }
  return { state: 'OK', message: `${formatBytes(sentinel.UncompressedSize)} restored: each part's SHA-256 and the files checked against backup_manifest` };
}

/** The checks on a ready scratch server: connections, amcheck, the full read, --check-sql. */
export async function runChecks(
  server: PostgresCluster,
  context: {
    checkSql: { path: string; statements: SqlStatement[] } | undefined;
    dataChecksums: boolean;
    timed: (name: string, work: () => Promise<CheckOutcome>) => Promise<CheckOutcome>;
    signal: AbortSignal;
  },
): Promise<void> {
  const { timed, signal } = context;
  // Each check's programs talk to the scratch server only: stopping it on interruption ends them.
  const run = <T>(work: Promise<T>) => unlessAborted(signal, work, interrupted);
  let databases: string[] = [];
  await timed('connections', async () => {
    const outcome = await run(checkConnections(server));
    databases = outcome.databases;
    return outcome;
  });
  await timed('amcheck', () => run(checkIndexes(server, databases)));
  await timed('read', () => run(readEveryTable(server, context.dataChecksums)));
  const { checkSql } = context;
  if (checkSql) await timed('check-sql', () => run(runCheckSql(server, checkSql.statements, checkSql.path)));
}

export async function readCheckSql(path: string): Promise<{ path: string; statements: SqlStatement[] }> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw new ConfigError(`--check-sql ${path}: ${isMissing(error) ? 'no such file' : describeError(error)}`);
  });
  const statements = splitSqlScript(text, path);
  if (statements.length === 0) throw new ConfigError(`--check-sql ${path} holds no SQL statement: write one per check, each returning a single true value`);
  return { path, statements };
}
