/**
 * Logical dumps with PostgreSQL's own programs: `pg_dump -Fc -Z 0` of one
 * database in a snapshot exported by a psql session (so walship knows when
 * the data is from), `pg_dumpall --globals-only` for roles and tablespaces,
 * `pg_restore` and psql to put them back, and the queries around them. Every
 * database name reaches a program as a connection string (databaseConninfo)
 * or a psql variable, never spliced into SQL.
 */
import { join } from 'node:path';
import { ConfigError, WalshipError } from '../errors.ts';
import {
  databaseConninfo,
  type ExitStatus,
  failureLine,
  findNextTo,
  findOnPath,
  isExecutable,
  type RunningProgram,
  runCaptured,
  startProgram,
  startProgramWithReusedOutput,
  summarizeStderr,
} from './programs.ts';
import type { ReusedReads } from '../util/socket-output.ts';

export interface DumpClient {
  pgDump: string;
  pgDumpall: string;
  pgRestore: string;
  psql: string;
  /** The environment with the libpq settings (it may hold PGPASSWORD: never print it). */
  env: NodeJS.ProcessEnv;
  /** coreutils' stdbuf, which pg_dump and pg_restore run through (withLargeStdioBuffers). */
  stdbuf?: string;
}

const PROGRAMS = ['pg_dump', 'pg_dumpall', 'pg_restore', 'psql'] as const;

/** The client programs: from `pgBin` (--pg-bin), else pg_dump on PATH and the others next to it. */
export function dumpClient(env: NodeJS.ProcessEnv, pgBin?: string): DumpClient {
  const pgDump = pgBin ? join(pgBin, 'pg_dump') : findOnPath('pg_dump', env.PATH);
  if (!pgDump) throw new ConfigError('pg_dump is not on PATH: install the PostgreSQL client programs or pass --pg-bin DIR');
  const found = PROGRAMS.map((program) => (pgBin ? join(pgBin, program) : findNextTo(pgDump, program)));
  const missing = PROGRAMS.filter((_, index) => !found[index] || !isExecutable(found[index]));
  if (missing.length > 0) {
    throw new ConfigError(`${pgBin ? `--pg-bin ${pgBin}` : `PATH (next to ${pgDump})`} has no ${missing.join(', ')}: install the PostgreSQL client programs, or pass --pg-bin with their directory`);
  }
  const [, pgDumpall, pgRestore, psql] = found as string[];
  return { pgDump, pgDumpall: pgDumpall!, pgRestore: pgRestore!, psql: psql!, env };
}

/** Hints for the failures DBAs meet most, keyed by what libpq or the server says. */
const HINTS: [RegExp, string][] = [
  [/no password supplied|password authentication failed/, 'set PGPASSWORD or PGPASSFILE for this user'],
  [/no pg_hba\.conf entry/, 'allow this user to connect to the database in pg_hba.conf and reload'],
  [/database ".*" does not exist/, 'set PGDATABASE to an existing database, such as postgres'],
  [/permission denied for (table|sequence|schema|relation|large object)/, 'the dumping role must be able to read every object: a superuser, or a member of pg_read_all_data'],
  [/connection to server .* failed|could not connect|could not translate host name/, 'check PGHOST and PGPORT, and that the server is running'],
];

function hintFor(message: string): string {
  const hint = HINTS.find(([pattern]) => pattern.test(message))?.[1];
  return hint ? `; ${hint}` : '';
}

/** One line saying why a program failed, from its stderr, with a hint where one is known. */
export function describeProgramFailure(program: string, status: ExitStatus): string {
  const detail = failureLine(status.stderr);
  const how = status.signal ? `was killed by ${status.signal}` : `failed (exit status ${status.code})`;
  return `${program} ${how}${detail ? `: ${detail}` : ''}${hintFor(detail)}`;
}

/** Runs SQL given on stdin with psql in `database`, its variables set; the rows, fields split. Fails with one line. */
async function query(client: DumpClient, database: string | undefined, sql: string, variables: Record<string, string> = {}): Promise<string[][]> {
  const args = ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-F', '\x1f', '-0'];
  for (const [name, value] of Object.entries(variables)) args.push('-v', `${name}=${value}`);
  if (database !== undefined) args.push('-d', databaseConninfo(database));
  const result = await runCaptured(client.psql, args, client.env, { input: sql });
  if (result.code !== 0) {
    const message = summarizeStderr(result.stderr, 1) || `psql exited with status ${result.code}`;
    throw new WalshipError(`cannot query the PostgreSQL server${database === undefined ? '' : ` (database "${database}")`}: ${message}${hintFor(message)}`);
  }
  return result.stdout.split('\0').filter((row) => row !== '').map((row) => row.split('\x1f'));
}

export interface DumpServer {
  versionNumber: number;
  /** A 64-bit number, as a decimal string. */
  systemIdentifier: string;
  /** wal_segment_size in bytes, for the archive's identity. */
  walSegmentSize: number;
  /** A superuser may read role passwords (pg_authid); others dump roles without them. */
  superuser: boolean;
  /** Every database but templates and those that refuse connections, by name; sizes where the role may see them. */
  databases: { name: string; size: number | undefined }[];
}

/**
 * What dump-push needs to know of the server, through the default database
 * (PGDATABASE): one psql session, whose first row is the server's facts and
 * the rest its databases.
 */
export async function inspectServerForDump(client: DumpClient): Promise<DumpServer> {
  const [facts = [], ...databases] = await query(
    client,
    undefined,
    `SELECT current_setting('server_version_num'), (SELECT system_identifier FROM pg_control_system()),
      pg_size_bytes(current_setting('wal_segment_size')), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
    SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END
      FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname;`,
  );
  const [version = '', systemIdentifier = '', segmentSize = '', superuser = ''] = facts;
  if (!/^-?\d+$/.test(systemIdentifier)) throw new WalshipError(`the server answered "${systemIdentifier}" for its system identifier (pg_control_system())`);
  return {
    versionNumber: Number(version),
    // A bigint in SQL: an identifier with the top bit set comes out negative.
    systemIdentifier: BigInt.asUintN(64, BigInt(systemIdentifier)).toString(),
    walSegmentSize: Number(segmentSize),
    superuser: superuser === 't',
    databases: databases.map(([name = '', size = '']) => ({ name, size: size === '' ? undefined : Number(size) })),
  };
}

/**
 * pg_dump writes its archive through stdio, which writes to its stdout 4 KiB
 * at a time: 150,000 writes for a 587 MiB dump, each waking the reader.
 * Through coreutils' stdbuf (a preloaded library that sets the buffer) it
 * writes 64 KiB at a time, which the socket Node reads it from takes at once:
 * with 1 MiB writes it blocked in each one until walship had read most of it,
 * so the two took turns instead of running side by side (dump-push of
 * pgbench -s 50: 4.2-4.9 s -> 3.1-3.4 s).
 */
const PG_DUMP_OUTPUT_BUFFER = '64K';
/** pg_restore reads an archive on stdin 4 KiB at a time, each read making room for 4 KiB more; through stdbuf it takes what the socket holds. */
const PG_RESTORE_INPUT_BUFFER = '1M';

/** `client` with pg_dump and pg_restore run through stdbuf where stdbuf is on PATH and works here; otherwise `client` as it is. */
export async function withLargeStdioBuffers(client: DumpClient): Promise<DumpClient> {
  return (await probeStdbuf(client)).client;
}

/** withLargeStdioBuffers's client and pg_dump's version line: the run of pg_dump --version through stdbuf that tries stdbuf also tells the version. */
export async function withLargeStdioBuffersAndVersion(client: DumpClient): Promise<{ client: DumpClient; dumpVersion: string }> {
  const probed = await probeStdbuf(client);
  return { client: probed.client, dumpVersion: probed.versionLine ?? (await pgDumpVersion(client)) };
}

/** Runs pg_dump --version through stdbuf, if there is one: where that works, `client` through stdbuf and pg_dump's version line. */
async function probeStdbuf(client: DumpClient): Promise<{ client: DumpClient; versionLine?: string }> {
  const stdbuf = findOnPath('stdbuf', client.env.PATH);
  if (!stdbuf) return { client };
  const probe = await runCaptured(stdbuf, ['-o', PG_DUMP_OUTPUT_BUFFER, client.pgDump, '--version'], client.env);
  return probe.code === 0 ? { client: { ...client, stdbuf }, versionLine: probe.stdout.trim() } : { client };
}

/** Starts `program` reading its stdin through stdbuf with a large buffer, where `client` has stdbuf. */
function startBufferedInput(client: DumpClient, program: string, args: string[]): RunningProgram {
  if (!client.stdbuf) return startProgram(program, args, client.env, { input: true });
  return startProgram(client.stdbuf, ['-i', PG_RESTORE_INPUT_BUFFER, program, ...args], client.env, { input: true });
}

/** pg_dump's version line, "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)". */
async function pgDumpVersion(client: DumpClient): Promise<string> {
  const result = await runCaptured(client.pgDump, ['--version'], client.env);
  if (result.code !== 0) throw new WalshipError(`cannot run ${client.pgDump} --version: ${summarizeStderr(result.stderr, 1) || `exit status ${result.code}`}`);
  return result.stdout.trim();
}

export interface ExportedSnapshot {
  /** For pg_dump --snapshot. */
  id: string;
  /** When the snapshot was taken, ISO 8601 UTC: the data pg_dump writes is as of this time. */
  time: string;
  /** Ends the exporting transaction, once pg_dump has taken the snapshot over (it holds it until it exits). */
  release(): Promise<void>;
}

/**
 * Opens a psql session in `database` that exports a snapshot and holds it
 * open; pg_dump then dumps exactly that snapshot, and its statement time is
 * when the data is from. (pg_dump -j takes its snapshot the same way.)
 */
export async function exportSnapshot(client: DumpClient, database: string): Promise<ExportedSnapshot> {
  const session = startProgram(
    client.psql,
    ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-v', 'application_name=walship dump-push', '-d', databaseConninfo(database)],
    client.env,
    { input: true },
  );
  session.input!.write(
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot() || ' ' || to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"');\n",
  );
  const release = async () => {
    session.input!.end();
    await session.exited;
  };
  const answer = await Promise.race([firstLine(session), session.exited.then(() => undefined)]);
  const [id, time] = answer?.split(' ') ?? [];
  if (!id || !time) {
    session.stop();
    const status = await session.exited;
    const message = summarizeStderr(status.stderr, 1) || 'psql ended without exporting a snapshot';
    throw new WalshipError(`cannot start a dump of database "${database}": ${message}${hintFor(message)}`);
  }
  return { id, time, release };
}

async function firstLine(program: RunningProgram): Promise<string | undefined> {
  let text = '';
  for await (const chunk of program.output) {
    text += String(chunk);
    const end = text.indexOf('\n');
    if (end >= 0) return text.slice(0, end);
  }
  return undefined;
}

/**
 * pg_dump's output is read into reused memory (postgres/programs.ts) and
 * handed on in pieces of at least this size: its 64 KiB writes as they come,
 * a read taking all the socket holds, and pg_dump's 4 KiB writes without
 * stdbuf gathered in place.
 */
const DUMP_OUTPUT_PIECE = 64 << 10;

/** pg_dump of one database in the custom format, uncompressed (walship compresses), in `snapshot`, through stdbuf where `client` has it. */
export function startPgDump(client: DumpClient, database: string, snapshot: string): Promise<RunningProgram<ReusedReads>> {
  const args = ['-F', 'c', '-Z', '0', '-w', '--snapshot', snapshot, '-d', databaseConninfo(database)];
  const [program, programArgs] = client.stdbuf ? [client.stdbuf, ['-o', PG_DUMP_OUTPUT_BUFFER, client.pgDump, ...args]] : [client.pgDump, args];
  return startProgramWithReusedOutput(program, programArgs, client.env, DUMP_OUTPUT_PIECE);
}

/** pg_dumpall --globals-only: roles (with their passwords when `passwords`), role memberships, tablespaces. */
export function startGlobalsDump(client: DumpClient, passwords: boolean): Promise<RunningProgram<ReusedReads>> {
  return startProgramWithReusedOutput(client.pgDumpall, ['--globals-only', '-w', ...(passwords ? [] : ['--no-role-passwords'])], client.env, DUMP_OUTPUT_PIECE);
}

/** Whether `database` exists on the server. */
export async function databaseExists(client: DumpClient, database: string): Promise<boolean> {
  const rows = await query(client, maintenanceDatabase(client, database), "SELECT 1 FROM pg_database WHERE datname = :'name';", { name: database });
  return rows.length > 0;
}

/** The relations in a database's own schemas: 0 for a new, empty database. */
export async function userRelationCount(client: DumpClient, database: string): Promise<number> {
  const [[count = '0'] = []] = await query(client, database, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%';`);
  return Number(count);
}

/** CREATE DATABASE from template0, which holds nothing a restore could collide with. */
export async function createDatabase(client: DumpClient, database: string): Promise<void> {
  await query(client, maintenanceDatabase(client, database), 'CREATE DATABASE :"name" TEMPLATE template0;', { name: database });
}

export async function dropDatabase(client: DumpClient, database: string): Promise<void> {
  await query(client, maintenanceDatabase(client, database), 'DROP DATABASE IF EXISTS :"name";', { name: database });
}

/** Where to connect to create or drop `database`: PGDATABASE, unless that is the one, else postgres. */
export function maintenanceDatabase(client: DumpClient, database: string): string {
  const configured = client.env.PGDATABASE;
  return configured && configured !== database ? configured : database === 'postgres' ? 'template1' : 'postgres';
}

/** pg_restore's arguments for a restore into `target`. */
export interface RestoreOptions {
  target: string;
  /** Create the database named in the archive (connecting to `target`, another database) instead of restoring into `target`. */
  createNamed?: boolean;
  /** Drop the archive's objects before creating them (--clean --if-exists). */
  clean?: boolean;
  /** All or nothing: one transaction (not with jobs or createNamed). */
  singleTransaction?: boolean;
  /** A TOC list (pg_restore -L) of the entries to restore. */
  listFile?: string;
  schemas?: string[];
  jobs?: number;
}

export function restoreArguments(options: RestoreOptions): string[] {
  const args = ['-w', '--exit-on-error', '-d', databaseConninfo(options.target)];
  if (options.createNamed) args.push('--create');
  if (options.clean) args.push('--clean', '--if-exists');
  if (options.singleTransaction) args.push('--single-transaction');
  if (options.listFile) args.push('-L', options.listFile);
  for (const schema of options.schemas ?? []) args.push('-n', schema);
  if (options.jobs && options.jobs > 1) args.push('-j', String(options.jobs));
  return args;
}

/** pg_restore reading the archive on stdin (`file` undefined) or from a file (parallel restore). */
export function startPgRestore(client: DumpClient, options: RestoreOptions, file?: string): RunningProgram {
  if (file) return startProgram(client.pgRestore, [...restoreArguments(options), file], client.env);
  return startBufferedInput(client, client.pgRestore, restoreArguments(options));
}

/** pg_restore reading only the archive's table of contents from stdin: `--list`, or `verbose` SQL headers with each entry's dependencies. */
export function startTocReader(client: DumpClient, form: 'list' | 'verbose'): RunningProgram {
  const args = form === 'list' ? ['--list'] : ['--schema-only', '--verbose', '-f', '-'];
  return startBufferedInput(client, client.pgRestore, args);
}

/**
 * psql running the globals SQL from stdin in the maintenance database. It
 * goes on past errors: "role ... already exists" is expected for roles that
 * are still there, and the ALTER ROLE after each CREATE ROLE then sets their
 * attributes and password again.
 */
export function startGlobalsRestore(client: DumpClient): RunningProgram {
  const args = ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=0', '-d', databaseConninfo(maintenanceDatabase(client, '')), '-f', '-'];
  // Every error line is read, not just the last ones.
  return startProgram(client.psql, args, client.env, { input: true, stderrBytes: 4 << 20 });
}

/** The errors of a globals restore, apart from roles and tablespaces that already exist. */
export function unexpectedGlobalsErrors(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /ERROR:/.test(line) && !/(role|tablespace) "[^"]*" already exists/.test(line)).map((line) => summarizeStderr(line, 1));
}
