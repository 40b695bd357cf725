/**
 * Finding PostgreSQL's programs, giving them the connection settings, and
 * running them. Debian installs version-specific programs under
 * /usr/lib/postgresql/<major>/bin, RHEL under /usr/pgsql-<major>/bin, and
 * only some of them on PATH.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Config } from '../config/config.ts';
import { ConfigError, WalshipError } from '../errors.ts';
import { type ReusedReads, socketOutput } from '../util/socket-output.ts';

/** The standard libpq environment variables, also accepted from the config file. */
export const LIBPQ_SETTINGS = [
  'PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGPASSFILE', 'PGDATABASE', 'PGSERVICE', 'PGSERVICEFILE',
  'PGSSLMODE', 'PGSSLROOTCERT', 'PGSSLCERT', 'PGSSLKEY', 'PGCONNECT_TIMEOUT', 'PGAPPNAME', 'PGOPTIONS',
] as const;

/** Without it an unreachable host can hang for minutes. */
const DEFAULT_CONNECT_TIMEOUT_SECONDS = '30';

export function libpqEnvironment(config: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of LIBPQ_SETTINGS) {
    const value = config.get(name);
    if (value !== undefined) env[name] = value;
  }
  env.PGCONNECT_TIMEOUT ??= DEFAULT_CONNECT_TIMEOUT_SECONDS;
  return env;
}

/** A connection string naming one database, for -d: a bare name with = in it, or a URI, would be read as connection settings. */
export function databaseConninfo(database: string): string {
  return `dbname='${database.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false; // absent, or not executable by this user: either way not a program to run
  }
}

export function findOnPath(program: string, path = process.env.PATH ?? ''): string | undefined {
  return path.split(delimiter).filter((directory) => isAbsolute(directory)).map((directory) => join(directory, program)).find(isExecutable);
}

/** A PostgreSQL program: the version-specific install of `majorVersion` first, then PATH. */
export function findPostgresProgram(program: string, majorVersion?: number): string | undefined {
  const versioned = majorVersion === undefined ? [] : [`/usr/lib/postgresql/${majorVersion}/bin`, `/usr/pgsql-${majorVersion}/bin`];
  return versioned.map((directory) => join(directory, program)).find(isExecutable) ?? findOnPath(program);
}

/**
 * The directory of PostgreSQL `majorVersion`'s programs that holds every one
 * of `programs`: `given` (--pg-bin), else where pg_ctl of that version is
 * found. A missing program or another version is a ConfigError.
 */
export async function serverProgramDirectory(given: string | undefined, majorVersion: number, programs: readonly string[]): Promise<string> {
  const pgCtl = given ? join(given, 'pg_ctl') : findPostgresProgram('pg_ctl', majorVersion);
  const advice = given ? 'pass the bin directory of PostgreSQL ' : 'install PostgreSQL ';
  if (!pgCtl || !isExecutable(pgCtl)) throw new ConfigError(`${given ? `--pg-bin ${given} holds no pg_ctl` : `pg_ctl of PostgreSQL ${majorVersion} is not installed, nor on PATH`}: ${advice}${majorVersion}${given ? '' : ' or pass --pg-bin DIR'}`);
  const directory = dirname(pgCtl);
  const missing = programs.filter((program) => !isExecutable(join(directory, program)));
  if (missing.length > 0) throw new ConfigError(`${directory} lacks ${missing.join(', ')}: install PostgreSQL ${majorVersion}'s server and client programs there, or pass --pg-bin DIR`);
  const version = await runCaptured(pgCtl, ['--version'], process.env);
  const found = /\(PostgreSQL\) (\d+)/.exec(version.stdout)?.[1];
  if (Number(found) !== majorVersion) {
    throw new ConfigError(`${pgCtl} is PostgreSQL ${found ?? '(unknown version)'}, but the backup is of PostgreSQL ${majorVersion}: ${advice}${majorVersion}`);
  }
  return directory;
}

/** A program installed next to `sibling` (psql next to pg_basebackup), else on PATH. */
export function findNextTo(sibling: string, program: string): string | undefined {
  const besides = join(dirname(sibling), program);
  return isExecutable(besides) ? besides : findOnPath(program);
}

export interface RunOptions {
  cwd?: string;
  /** Written to the program's standard input (else it reads nothing). */
  input?: string;
  /** Kills the program, and any it started, after this long; the run then fails. */
  timeoutMs?: number;
  /** Run as this OS user (with runuser) when walship runs as root, as PostgreSQL's programs refuse root; otherwise as the current user. */
  osUser?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to completion, capturing its output. Only a timeout
 * rejects: a program that cannot start resolves with code 127, one killed by
 * a signal with 128 plus its number.
 */
export async function runCaptured(command: string, args: string[], env: NodeJS.ProcessEnv, options: RunOptions = {}): Promise<RunResult> {
  const [file, fileArgs] = options.osUser && process.getuid?.() === 0 ? ['runuser', ['-u', options.osUser, '--', command, ...args]] : [command, args];
  const { timeoutMs } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, {
      env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      // Its own process group, so a timeout kills whatever it started too.
      detached: timeoutMs !== undefined,
    });
    let stdout = '';
    let stderr = '';
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {
              // It exited meanwhile: its close settles the run.
            }
            reject(new WalshipError(`${command} ${args.join(' ')} did not finish within ${timeoutMs / 1000} s and was killed; stderr: ${stderr.slice(-2000)}`));
          }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `cannot run ${command}: ${error.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (signal ? osConstants.signals[signal] : 0), stdout, stderr });
    });
    if (child.stdin) {
      // A program that exits without reading its input closes the pipe: not a failure of the run.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of its stderr. */
  stderr: string;
}

export interface RunningProgram<Output = Readable> {
  /** Its standard output. */
  output: Output;
  /** Its standard input, when asked for (else it reads nothing). */
  input: Writable | undefined;
  exited: Promise<ExitStatus>;
  /** Stops the program (SIGTERM), unless it has exited. */
  stop(): void;
}

const STDERR_TAIL = 8192;

/**
 * Starts a program whose output is streamed (pg_basebackup, pg_dump,
 * pg_restore); the last `stderrBytes` of its stderr are kept for the exit status.
 */
export function startProgram(command: string, args: string[], env: NodeJS.ProcessEnv, options: { input?: boolean; stderrBytes?: number } = {}): RunningProgram {
  const { child, program } = launch(command, args, env, 'pipe', options);
  return { ...program, output: child.stdout! };
}

/**
 * startProgram for a program with a large output (pg_dump): its output is
 * read into reused memory, in pieces of at least `minimumPiece` bytes
 * (util/socket-output.ts), instead of a stream of fresh buffers.
 */
export async function startProgramWithReusedOutput(command: string, args: string[], env: NodeJS.ProcessEnv, minimumPiece: number): Promise<RunningProgram<ReusedReads>> {
  const { childEnd, reads } = await socketOutput(minimumPiece);
  try {
    return { ...launch(command, args, env, childEnd, {}).program, output: reads };
  } catch (error) {
    reads.destroy();
    throw error;
  } finally {
    // The child has its own copy: the reads end when it exits.
    childEnd.destroy();
  }
}

function launch(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  stdout: 'pipe' | Socket,
  options: { input?: boolean; stderrBytes?: number },
): { child: ChildProcess; program: Omit<RunningProgram, 'output'> } {
  const child: ChildProcess = spawn(command, args, { env, stdio: [options.input ? 'pipe' : 'ignore', stdout, 'pipe'] });
  const kept = options.stderrBytes ?? STDERR_TAIL;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-kept)));
  // A program that exits without reading all its input closes the pipe: its exit status says why.
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, stderr: `cannot run ${command}: ${error.message}` }));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return {
    child,
    program: {
      input: child.stdin ?? undefined,
      exited,
      stop: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      },
    },
  };
}

/** The meaningful lines of a client program's stderr (at most `lines`), on one line, without the programs' "name: error:" prefixes. */
export function summarizeStderr(stderr: string, lines = 3): string {
  return stderr
    .split('\n')
    .map((line) => line.replace(/^(psql|pg_basebackup|pg_dump|pg_dumpall|pg_restore): (error: |detail: )?/, '').replace(/^psql:[^:]*:\d+: /, '').trim())
    .filter(Boolean)
    .slice(-lines)
    .join(' / ');
}

/** What a failed program's stderr says went wrong: its last error line with the detail after it, else its last line. */
export function failureLine(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  const at = lines.findLastIndex((line) => /^[\w-]+: error: |\bERROR: |\bFATAL: /.test(line));
  if (at < 0) return summarizeStderr(stderr, 1);
  const detail = lines.slice(at + 1).find((line) => /^[\w-]+: detail: /.test(line) && !/Command was:/.test(line));
  return summarizeStderr([lines[at], detail].filter(Boolean).join('\n'), 2);
}
