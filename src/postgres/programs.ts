/**
 * Finding PostgreSQL's client programs and giving them the connection
 * settings. Debian installs version-specific programs under
 * /usr/lib/postgresql/<major>/bin, RHEL under /usr/pgsql-<major>/bin, and
 * only some of them on PATH.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import type { Config } from '../config/config.ts';

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

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
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

/** A program installed next to `sibling` (psql next to pg_basebackup), else on PATH. */
export function findNextTo(sibling: string, program: string): string | undefined {
  const besides = join(dirname(sibling), program);
  return isExecutable(besides) ? besides : findOnPath(program);
}

/** Runs a program to completion, capturing its output; never throws. */
export async function runCaptured(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', (error) => resolve({ code: 127, stdout, stderr: `cannot run ${command}: ${error.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
