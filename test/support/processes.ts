/** Running commands in tests: as the PostgreSQL OS user when we are root. */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export const isRoot = process.getuid?.() === 0;
export const POSTGRES_USER = 'postgres';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command that runs longer than this in a test is stuck: it is killed and the test fails. */
const DEFAULT_RUN_TIMEOUT_MS = 180_000;

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  asPostgres?: boolean;
  input?: string;
  timeoutMs?: number;
}

/**
 * Runs a command (as the postgres user when root), never throwing on a
 * non-zero exit. One that does not finish in time is killed with its whole
 * process group, and the run fails with what it printed.
 */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, fileArgs] = options.asPostgres && isRoot ? ['runuser', ['-u', POSTGRES_USER, '--', command, ...args]] : [command, args];
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs / 1000} s and was killed; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // A program that exits without reading its input closes the pipe: not an error of the run.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Like run(), but a non-zero exit is an error carrying the output. */
export async function check(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

let postgresOwner: { uid: number; gid: number } | undefined;

/** Gives a path to the postgres user when we are root, so the server can use it. */
export function giveToPostgres(path: string): void {
  if (!isRoot) return;
  postgresOwner ??= {
    uid: Number(execFileSync('id', ['-u', POSTGRES_USER])),
    gid: Number(execFileSync('id', ['-g', POSTGRES_USER])),
  };
  chownSync(path, postgresOwner.uid, postgresOwner.gid);
}

/** A TCP port that was free a moment ago, on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The pid in one of walship's pid files ("<pid> <start time>"), if the file exists. */
export function pidInFile(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8').split(' ')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
