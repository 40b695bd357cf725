/**
 * walship drill --dump: a dump set restored into a new server, checked, then
 * thrown away.
 *
 *   choose the dump set -> initdb a scratch cluster and start it as a backup
 *   drill starts its server (drill/scratch.ts: its own directory, socket and
 *   port, nothing reachable) -> restore the globals and every database with
 *   dump-restore's own code -> run the drill's checks -> stop the server,
 *   remove the directory -> store the report (the drill's only write).
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ArchiveCatalog } from '../archive/catalog.ts';
import { storeDumpDrillReport } from '../archive/drills.ts';
import { type DumpSentinel, readDumpSentinel } from '../archive/dumps.ts';
import type { CheckState } from '../checks/verdict.ts';
import type { Config } from '../config/config.ts';
import { NotFoundError, WalshipError } from '../errors.ts';
import type { PostgresCluster } from '../postgres/cluster.ts';
import { databaseExists, dumpClient } from '../postgres/dump.ts';
import { serverProgramDirectory } from '../postgres/programs.ts';
import { restoreDump } from '../dump/restore.ts';
import { formatBytes } from '../progress/progress.ts';
import { StorageRequestError } from '../storage/requests.ts';
import type { Storage } from '../storage/storage.ts';
import { interruptible, unlessAborted } from '../util/process.ts';
import { VERSION } from '../version.ts';
import type { CheckOutcome } from './checks.ts';
import { readCheckSql, refuseRoot, runChecks, storingReport } from './drill.ts';
import { type CheckResult, type DumpDrillReport, dumpDrillVerdict, round } from './report.ts';
import { DUMP_DRILL_PROGRAMS, interrupted, Scratch } from './scratch.ts';

export interface DumpDrillSettings {
  config: Config;
  storage: Storage;
  /** A dump set's name, or LATEST. */
  dump: string;
  scratchParent: string;
  pgBin: string | undefined;
  checkSqlFile: string | undefined;
  keep: boolean;
}

export interface DumpDrillResult {
  state: CheckState;
  summary: string;
  report: DumpDrillReport & { report_key?: string };
  kept: string[];
}

export async function runDumpDrill(settings: DumpDrillSettings): Promise<DumpDrillResult> {
  refuseRoot();
  const checkSql = settings.checkSqlFile === undefined ? undefined : await readCheckSql(settings.checkSqlFile);
  const { storage } = settings;
  const startedAt = new Date();
  const sentinel = await chooseDumpSet(storage, settings.dump);
  const chosenAt = performance.now();
  const binDirectory = await serverProgramDirectory(settings.pgBin, Math.floor(sentinel.PgVersion / 10000), DUMP_DRILL_PROGRAMS);
  const scratch = await Scratch.create(settings.scratchParent, { name: `dump set ${sentinel.DumpName}`, bytes: sentinel.UncompressedSize });

  const checks: CheckResult[] = [];
  const facts = { serverSeconds: null as number | null, restoreSeconds: null as number | null, rtoSeconds: null as number | null, postgresVersion: null as string | null };
  const timed = async (name: string, work: () => Promise<CheckOutcome>) => {
    const started = performance.now();
    const { state, message } = await work();
    checks.push({ name, state, seconds: round((performance.now() - started) / 1000), message });
    return { state, message };
  };

  let kept: string[] = [];
  await interruptible(async (signal) => {
    try {
      const serverStarted = performance.now();
      const server = await unlessAborted(signal, scratch.initServer(binDirectory), interrupted);
      facts.serverSeconds = round((performance.now() - serverStarted) / 1000);
      const restored = await timed('restore', () => restore(storage, sentinel, server, binDirectory, signal));
      facts.restoreSeconds = checks.at(-1)!.seconds;
      if (restored.state !== 'OK') return;
      facts.rtoSeconds = round((performance.now() - chosenAt) / 1000);
      facts.postgresVersion = await unlessAborted(signal, server.sql('SHOW server_version'), interrupted);
      await runChecks(server, { checkSql, dataChecksums: true, timed, signal });
    } finally {
      kept = await scratch.cleanUp(settings.keep);
    }
  });

  const finishedAt = new Date();
  const snapshot = sentinel.Databases.map((database) => database.SnapshotTime).sort()[0] ?? sentinel.StartTime;
  const partial = {
    kind: 'dump' as const,
    dump: sentinel.DumpName,
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    host: hostname(),
    storage: storage.location,
    walship_version: VERSION,
    postgres_version: facts.postgresVersion,
    databases: sentinel.Databases.map((database) => database.Database),
    rto_seconds: facts.rtoSeconds,
    server_seconds: facts.serverSeconds,
    restore_seconds: facts.restoreSeconds,
    checks_seconds: round(checks.filter((check) => check.name !== 'restore').reduce((sum, check) => sum + check.seconds, 0)),
    snapshot_time: snapshot,
    data_age_seconds: round((finishedAt.getTime() - Date.parse(snapshot)) / 1000),
    data_checksums: true,
    checks,
  };
  const verdict = dumpDrillVerdict(partial);
  const report: DumpDrillReport = { ...partial, result: verdict.state, summary: verdict.summary };
  return { ...(await storingReport(verdict, report, () => storeDumpDrillReport(storage, report))), kept };
}

/** The named dump set, or for LATEST the newest complete one by finish time. */
async function chooseDumpSet(storage: Storage, requested: string): Promise<DumpSentinel> {
  if (requested !== 'LATEST') return readDumpSentinel(storage, requested);
  const newest = (await ArchiveCatalog.load(storage, { wal: false, backups: false, dumps: true })).dumpSets().at(-1);
  if (!newest) throw new NotFoundError(`${storage.location} holds no complete dump set: run dump-push first`);
  return newest;
}

/** The globals, then every database of the set, as dump-restore restores them (each object's checksums verified). */
async function restore(storage: Storage, sentinel: DumpSentinel, server: PostgresCluster, binDirectory: string, signal: AbortSignal): Promise<CheckOutcome> {
  const client = dumpClient(server.clientEnvironment, binDirectory);
  const request = { storage, client, name: sentinel.DumpName, target: undefined, clean: false, tables: [], schemas: [], jobs: 1, signal };
  try {
    await restoreDump({ ...request, database: undefined, create: false, globals: true });
    for (const { Database: database } of sentinel.Databases) {
      // The new cluster has its own postgres database: the dump's goes into it.
      await restoreDump({ ...request, database, create: !(await databaseExists(client, database)), globals: false });
    }
  } catch (error) {
    if (signal.aborted) throw interrupted();
    // Storage out of reach is no verdict on the dump set: the drill could not check (UNKNOWN).
    if (error instanceof StorageRequestError || !(error instanceof WalshipError)) throw error;
    return { state: 'CRITICAL', message: `the dump set cannot be restored: ${error.message}` };
  }
  return {
    state: 'OK',
    message: `the globals and ${sentinel.Databases.length} databases restored (${formatBytes(sentinel.UncompressedSize)} of dumps), each object's SHA-256 checked`,
  };
}
