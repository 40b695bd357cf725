/**
 * Talking to the server for a base backup: a preflight query through psql
 * (so problems get a clear message before any data moves), then
 * `pg_basebackup -D - -Ft -X fetch` streaming one tar archive to stdout.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { isValidSegmentSize } from './lsn.ts';
import { type ExitStatus, findNextTo, findOnPath, isExecutable, runCaptured, startProgram, summarizeStderr } from './programs.ts';

export interface PostgresClient {
  pgBasebackup: string;
  psql: string;
  /** The environment with the libpq settings (it may hold PGPASSWORD: never print it). */
  env: NodeJS.ProcessEnv;
}

export function postgresClient(env: NodeJS.ProcessEnv, pgBasebackupOption?: string): PostgresClient {
  const pgBasebackup = pgBasebackupOption ?? findOnPath('pg_basebackup', env.PATH);
  if (!pgBasebackup) {
    throw new ConfigError('pg_basebackup is not on PATH: install the PostgreSQL client programs or pass --pg-basebackup PATH');
  }
  if (!isExecutable(pgBasebackup)) throw new ConfigError(`--pg-basebackup ${pgBasebackup} is not an executable file`);
  const psql = findNextTo(pgBasebackup, 'psql');
  if (!psql) throw new ConfigError(`psql is neither next to ${pgBasebackup} nor on PATH: install the PostgreSQL client programs`);
  return { pgBasebackup, psql, env };
}

export interface ServerFacts {
  versionNumber: number;
  /** pg_control's system identifier, a 64-bit number as a decimal string. */
  systemIdentifier: string;
  archiveMode: string;
  /** Tablespaces other than pg_default and pg_global. */
  extraTablespaces: string[];
  /** Visible to superusers and pg_read_all_settings members only. */
  dataDirectory: string | undefined;
  /** The databases' total size: an estimate of the backup's size, for progress. */
  estimatedSize: number | undefined;
  /** wal_segment_size in bytes. */
  walSegmentSize: number;
}

const PREFLIGHT_QUERY = `SELECT current_setting('server_version_num'),
  (SELECT system_identifier FROM pg_control_system()),
  current_setting('archive_mode'),
  (SELECT coalesce(string_agg(spcname, ','), '') FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')),
  (SELECT coalesce(max(setting), '') FROM pg_settings WHERE name = 'data_directory'),
  (SELECT coalesce(sum(pg_database_size(oid)), 0) FROM pg_database WHERE has_database_privilege(oid, 'CONNECT')),
  pg_size_bytes(current_setting('wal_segment_size'))`;

/** Hints for the failures DBAs meet most, keyed by what libpq or the server says. */
const CONNECTION_HINTS: [RegExp, string][] = [
  [/no password supplied|password authentication failed/, 'set PGPASSWORD or PGPASSFILE for this user'],
  [/no pg_hba\.conf entry for replication/, 'allow replication connections for this user in pg_hba.conf (a "replication" line) and reload'],
  [/no pg_hba\.conf entry for host/, 'allow this user to connect to PGDATABASE in pg_hba.conf (backup-push reads a few server settings through it) and reload'],
  [/must be superuser or replication role|permission denied to start WAL sender|must have the REPLICATION/i, 'grant it: ALTER ROLE <user> REPLICATION'],
  [/exceeds max_wal_senders|max_wal_senders/, 'raise max_wal_senders on the server (it needs one free WAL sender)'],
  [/can only write single tablespace to stdout/, 'pg_basebackup cannot stream more than one tablespace to stdout: move the objects into pg_default'],
  [/database ".*" does not exist/, 'set PGDATABASE to an existing database, such as postgres: backup-push reads a few server settings through it'],
  [/connection to server .* failed|could not connect|could not translate host name/, 'check PGHOST and PGPORT, and that the server is running'],
];

function hintFor(message: string): string {
  const hint = CONNECTION_HINTS.find(([pattern]) => pattern.test(message))?.[1];
  return hint ? `; ${hint}` : '';
}

export async function inspectServer(client: PostgresClient): Promise<ServerFacts> {
  const result = await runCaptured(client.psql, ['-X', '-A', '-t', '-q', '-w', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', PREFLIGHT_QUERY], client.env);
  if (result.code !== 0) {
    const message = summarizeStderr(result.stderr) || `psql exited with status ${result.code}`;
    throw new WalshipError(`cannot query the PostgreSQL server: ${message}${hintFor(message)}`);
  }
  const [version = '', systemIdentifier = '', archiveMode = '', tablespaces = '', dataDirectory = '', size = '', segmentSize = ''] = result.stdout.trim().split('\t');
  if (!/^-?\d+$/.test(systemIdentifier)) throw new WalshipError(`the server answered "${systemIdentifier}" for its system identifier (pg_control_system())`);
  if (!isValidSegmentSize(Number(segmentSize))) throw new WalshipError(`the server answered "${segmentSize}" for its wal_segment_size`);
  return {
    versionNumber: Number(version),
    // A bigint in SQL: an identifier with the top bit set comes out negative.
    systemIdentifier: BigInt.asUintN(64, BigInt(systemIdentifier)).toString(),
    archiveMode,
    extraTablespaces: tablespaces ? tablespaces.split(',') : [],
    dataDirectory: dataDirectory || undefined,
    estimatedSize: Number(size) > 0 ? Number(size) : undefined,
    walSegmentSize: Number(segmentSize),
  };
}

/**
 * Refuses the server states in which a backup would fail or be useless,
 * and a server that runs another cluster than the data directory named.
 */
export function checkServerForBackup(server: ServerFacts, dataDirectory?: string): void {
  if (dataDirectory !== undefined) checkDataDirectory(server, dataDirectory);
  if (server.versionNumber < 130000) {
    throw new WalshipError(`the server runs PostgreSQL ${server.versionNumber}: backup-push needs PostgreSQL 13 or later (backup manifests)`);
  }
  if (server.archiveMode === 'off') {
    throw new WalshipError(
      "archive_mode is off on the server: a backup without archived WAL cannot be recovered past its own end. Set archive_mode = on and archive_command = 'walship wal-push %p', restart the server, then run backup-push again",
    );
  }
  if (server.extraTablespaces.length > 0) {
    throw new WalshipError(
      `the cluster has tablespaces besides pg_default (${server.extraTablespaces.join(', ')}): pg_basebackup can stream only one tablespace to stdout. Move their objects into pg_default (ALTER TABLE/INDEX ... SET TABLESPACE pg_default) and drop them, or back them up another way`,
    );
  }
}

/** WAL-G's `backup-push DIR` names the cluster to back up; pg_basebackup backs up whichever server PGHOST and PGPORT reach. */
function checkDataDirectory(server: ServerFacts, named: string): void {
  if (server.dataDirectory === undefined) {
    log.info(`the server shows its data_directory only to superusers and pg_read_all_settings members: ${named} is not checked against it`);
    return;
  }
  if (!sameDirectory(server.dataDirectory, named)) {
    throw new ConfigError(
      `backup-push ${named}: the server that PGHOST and PGPORT reach runs the cluster in ${server.dataDirectory}; point them at the server of ${named}, or name its own data directory`,
    );
  }
}

function sameDirectory(a: string, b: string): boolean {
  const real = (path: string) => {
    try {
      return realpathSync(path);
    } catch {
      return resolve(path); // not here (a remote server's directory, a typo): compare the paths as given
    }
  };
  return resolve(a) === resolve(b) || real(a) === real(b);
}

export interface RunningBaseBackup {
  /** The tar archive. */
  output: Readable;
  exited: Promise<ExitStatus>;
  /** Stops pg_basebackup (the server then abandons the backup). */
  stop(): void;
}

export function startBaseBackup(client: PostgresClient, label: string): RunningBaseBackup {
  const args = ['-D', '-', '-F', 't', '-X', 'fetch', '-c', 'fast', '-w', '--manifest-checksums=CRC32C', '-l', label];
  return startProgram(client.pgBasebackup, args, client.env);
}

/** One line saying why pg_basebackup failed, with a hint where one is known. */
export function describeBaseBackupFailure(status: ExitStatus): string {
  const detail = summarizeStderr(status.stderr);
  const how = status.signal ? `was killed by ${status.signal}` : `failed (exit status ${status.code})`;
  return `pg_basebackup ${how}${detail ? `: ${detail}` : ''}${hintFor(detail)}`;
}
