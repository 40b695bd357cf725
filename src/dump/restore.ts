/**
 * dump-restore: pg_restore (and psql for the globals) fed from storage.
 *
 *   --globals: globals.sql -> psql, before the database (its objects' owners
 *     and grants name the roles)
 *   serial:    the archive streamed into pg_restore in one transaction: all or nothing
 *   --jobs N:  the archive fetched to a temporary file first (parallel restore
 *     seeks in it), removed afterwards, also on failure or interruption
 *   --table:   the table of contents read first, and the tables restored with
 *     everything that belongs to them (postgres/dump-toc.ts)
 *
 * Everything that can be refused (an unknown database, a target that exists
 * or does not, a non-empty target) is refused before anything changes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DumpedObject, type DumpSentinel, readDumpSentinel } from '../archive/dumps.ts';
import { ConfigError, describeError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { describeEntry, parseToc, requireSchemas, selectTables, type TocEntry } from '../postgres/dump-toc.ts';
import {
  createDatabase,
  databaseExists,
  describeProgramFailure,
  type DumpClient,
  dropDatabase,
  maintenanceDatabase,
  type RestoreOptions,
  startGlobalsRestore,
  startPgRestore,
  startTocReader,
  unexpectedGlobalsErrors,
  userRelationCount,
  withLargeStdioBuffers,
} from '../postgres/dump.ts';
import type { RunningProgram } from '../postgres/programs.ts';
import { Progress } from '../progress/progress.ts';
import { Pipeline } from '../stages/pipeline.ts';
import { reclaimStage } from '../stages/reclaim.ts';
import type { Storage } from '../storage/storage.ts';
import { collectText, dumpedObject, feedProgram, fetchDump, openDumpObject, progressStage } from './fetch.ts';

export interface DumpRestoreSettings {
  storage: Storage;
  client: DumpClient;
  name: string;
  /** The database of the dump set to restore; undefined to restore only the globals. */
  database: string | undefined;
  /** Where to restore it (default: a database of the same name). */
  target: string | undefined;
  create: boolean;
  clean: boolean;
  tables: string[];
  schemas: string[];
  jobs: number;
  globals: boolean;
  signal?: AbortSignal;
}

/** Restores; resolves to the lines that say what was done. */
export async function restoreDump(settings: DumpRestoreSettings): Promise<string[]> {
  const { database } = settings;
  if (database === undefined && !settings.globals) throw new ConfigError('name a database of the dump set to restore, or pass --globals (dump-list --detail shows what a set holds)');
  if (database === undefined && (settings.target || settings.create || settings.clean || settings.tables.length || settings.schemas.length || settings.jobs > 1)) {
    throw new ConfigError('--target-dbname, --create, --clean, --table, --schema and --jobs restore a database: name the database of the dump set to restore');
  }
  if (settings.create && settings.clean) throw new ConfigError('--create makes a new database, so --clean has nothing to drop: give one of them');
  const sentinel = await readDumpSentinel(settings.storage, settings.name);
  const dumped = database === undefined ? undefined : dumpedObject(sentinel, { database });
  const target = settings.target ?? database;
  if (target !== undefined) await checkTarget(settings, target);

  const done: string[] = [];
  if (settings.globals) {
    try {
      done.push(...(await restoreGlobals(settings, sentinel)));
    } catch (error) {
      if (database === undefined) throw error;
      throw new WalshipError(`${explain(settings, error)}; database "${database}" was not restored`, { cause: error });
    }
  }
  if (dumped && target !== undefined) done.push(await restoreDatabase({ ...settings, client: await withLargeStdioBuffers(settings.client) }, sentinel, dumped, target));
  return done;
}

/** Refuses, before anything changes, a target whose state does not match what was asked. */
async function checkTarget(settings: DumpRestoreSettings, target: string): Promise<void> {
  const exists = await databaseExists(settings.client, target);
  if (settings.create && exists) {
    throw new ConfigError(`database "${target}" exists: --create makes a new database; restore into the existing one without --create (with --clean to replace the dump's objects), or name a new one with --target-dbname`);
  }
  if (!settings.create && !exists) throw new ConfigError(`database "${target}" does not exist: pass --create to create it, or create it first`);
  const whole = settings.tables.length === 0 && settings.schemas.length === 0;
  if (exists && whole && !settings.clean) {
    const relations = await userRelationCount(settings.client, target);
    if (relations > 0) {
      throw new ConfigError(
        `database "${target}" is not empty (${relations} relations): restoring the whole dump into it would stop at the first object it already has; pass --clean to drop and re-create the dump's objects, restore only some with --table or --schema, or restore into a new database with --create --target-dbname NAME`,
      );
    }
  }
}

async function restoreGlobals(settings: DumpRestoreSettings, sentinel: DumpSentinel): Promise<string[]> {
  const opened = await openDumpObject(settings.storage, sentinel, sentinel.Globals);
  const psql = startGlobalsRestore(settings.client);
  await runFed(settings, psql, new Pipeline(opened.stored.body, opened.stages).pieces(), 'psql');
  const stderr = (await psql.exited).stderr;
  const unexpected = unexpectedGlobalsErrors(stderr);
  if (unexpected.length > 0) {
    throw new WalshipError(`the globals of ${sentinel.DumpName} were restored with ${unexpected.length} error${unexpected.length === 1 ? '' : 's'} (the other statements applied): ${unexpected[0]}`);
  }
  const existed = stderr.split('\n').filter((line) => /already exists/.test(line)).length;
  return [
    `restored the globals of ${sentinel.DumpName} (roles, memberships, tablespaces)${existed ? `; ${existed} already existed, and their attributes were set again from the dump` : ''}${sentinel.Globals.RolePasswords ? '' : '; the roles have no passwords: the dump was taken by a role that could not read them'}`,
  ];
}

async function restoreDatabase(settings: DumpRestoreSettings, sentinel: DumpSentinel, dumped: DumpedObject, target: string): Promise<string> {
  const database = settings.database!;
  const { client } = settings;
  const whole = settings.tables.length === 0 && settings.schemas.length === 0;
  const scratch = await mkdtemp(join(tmpdir(), 'walship-dump-restore-'));
  try {
    const options: RestoreOptions = { target, clean: settings.clean, jobs: settings.jobs };
    const selected = whole ? '' : await selectEntries(settings, sentinel, dumped, options, scratch);
    let created = false;
    try {
      if (settings.create) {
        // pg_restore --create brings the database's own properties (owner, settings, grants), but only under its own name, and only for a whole restore.
        if (target === database && whole) {
          options.createNamed = true;
          options.target = maintenanceDatabase(client, target);
        } else {
          await createDatabase(client, target);
        }
        created = true;
      }
      options.singleTransaction = settings.jobs <= 1 && !options.createNamed;
      await runRestore(settings, sentinel, dumped, options, scratch);
    } catch (error) {
      throw new WalshipError(`${explain(settings, error)}; ${await afterFailure(settings, target, created)}`, { cause: error });
    }
    return `restored database "${database}" of ${sentinel.DumpName} into "${target}"${selected}; run ANALYZE in it, as pg_restore leaves the planner's statistics empty`;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Reads the TOC for --table and --schema, refusing names the dump lacks; sets the options that select them; says what was selected. */
async function selectEntries(settings: DumpRestoreSettings, sentinel: DumpSentinel, dumped: DumpedObject, options: RestoreOptions, scratch: string): Promise<string> {
  const entries = await readToc(settings, sentinel, dumped);
  requireSchemas(entries, settings.schemas);
  if (settings.tables.length === 0) {
    options.schemas = settings.schemas;
    return `: schema ${settings.schemas.join(', ')}`;
  }
  const selection = selectTables(entries, settings.tables, settings.schemas);
  options.listFile = join(scratch, 'restore.list');
  await writeFile(options.listFile, `${selection.entries.map((entry) => entry.line).join('\n')}\n`, { mode: 0o600 });
  if (selection.leftOut.length > 0) log.warning(`left out, as they belong to other objects: ${selection.leftOut.map(describeEntry).join(', ')}`);
  return `: ${settings.tables.join(', ')} (${selection.entries.length} entries: ${summarizeKinds(selection.entries)})`;
}

/** pg_restore streamed from storage, or with --jobs from a temporary copy in `scratch`. */
async function runRestore(settings: DumpRestoreSettings, sentinel: DumpSentinel, dumped: DumpedObject, options: RestoreOptions, scratch: string): Promise<void> {
  const database = settings.database!;
  settings.signal?.throwIfAborted();
  if (settings.jobs > 1) {
    const file = join(scratch, 'archive.dump');
    await fetchDump({ storage: settings.storage, name: sentinel.DumpName, part: { database }, file, signal: settings.signal });
    settings.signal?.throwIfAborted();
    return runFed(settings, startPgRestore(settings.client, options, file), undefined, 'pg_restore');
  }
  const progress = new Progress({ label: `dump-restore ${database} of ${sentinel.DumpName}`, total: dumped.UncompressedSize });
  try {
    const opened = await openDumpObject(settings.storage, sentinel, dumped);
    const stages = [...opened.stages, reclaimStage(RECLAIM_EVERY), progressStage(progress)];
    await runFed(settings, startPgRestore(settings.client, options), new Pipeline(opened.stored.body, stages).pieces(), 'pg_restore');
  } finally {
    progress.finish();
  }
}

/** The decompressed archive comes in fresh buffers: their memory is reclaimed this often (stages/reclaim.ts). */
const RECLAIM_EVERY = 4 << 20;

const INTERRUPTED = 'dump-restore was interrupted';

/** Why a step failed: an interruption says so, whatever the step it stopped made of it. */
function explain(settings: DumpRestoreSettings, error: unknown): string {
  return settings.signal?.aborted ? INTERRUPTED : describeError(error);
}

/** What a failed restore left, said in the error. */
async function afterFailure(settings: DumpRestoreSettings, target: string, created: boolean): Promise<string> {
  if (created) {
    try {
      await dropDatabase(settings.client, target);
      return `database "${target}", which this restore created, was dropped again`;
    } catch (error) {
      return `database "${target}", which this restore created, holds part of the dump and could not be dropped (${describeError(error)}): drop it before restoring again`;
    }
  }
  if (settings.jobs > 1) return `database "${target}" may hold part of the dump (a parallel restore is not one transaction): restore again with --clean`;
  return `nothing was restored into "${target}" (the restore ran in one transaction)`;
}

/** The archive's table of contents, read from its start twice: its list, and its entries' dependencies. */
async function readToc(settings: DumpRestoreSettings, sentinel: DumpSentinel, dumped: DumpedObject): Promise<TocEntry[]> {
  const read = async (form: 'list' | 'verbose') => {
    const opened = await openDumpObject(settings.storage, sentinel, dumped, { verify: false });
    const reader = startTocReader(settings.client, form);
    const text = collectText(reader.output);
    await runFed(settings, reader, new Pipeline(opened.stored.body, opened.stages).pieces(), 'pg_restore');
    return text;
  };
  return parseToc(await read('list'), await read('verbose'));
}

/** Runs a program fed with `source` (or reading a file), stopping it on interruption; fails with its own failure line. */
async function runFed(settings: DumpRestoreSettings, program: RunningProgram, source: AsyncIterable<Buffer> | undefined, name: string): Promise<void> {
  const stop = () => program.stop();
  settings.signal?.addEventListener('abort', stop, { once: true });
  if (settings.signal?.aborted) stop();
  try {
    if (source) await feedProgram(source, program);
    const status = await program.exited;
    if (settings.signal?.aborted) throw new WalshipError(INTERRUPTED);
    if (status.code !== 0) throw new WalshipError(describeProgramFailure(name, status));
  } finally {
    settings.signal?.removeEventListener('abort', stop);
    program.stop();
  }
}

/** "TABLE, TABLE DATA, 2 INDEX, ACL" */
function summarizeKinds(entries: readonly TocEntry[]): string {
  const counts = new Map<string, number>();
  for (const entry of entries) counts.set(entry.desc, (counts.get(entry.desc) ?? 0) + 1);
  return [...counts].map(([desc, count]) => (count === 1 ? desc : `${count} ${desc}`)).join(', ');
}
