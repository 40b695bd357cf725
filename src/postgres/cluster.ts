/**
 * A PostgreSQL cluster of one's own, to start, query and throw away: a private
 * root directory holding the data directory, the server log and the Unix
 * socket (no TCP), a port of its own, and a stop by PID at the end. The
 * tests, the demo, the benchmarks and the restore drill share it.
 *
 * PostgreSQL's programs run as the current user. As root, `osUser` runs them
 * as that user instead (initdb and the server refuse root), and gives it the
 * files they need.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WalshipError } from '../errors.ts';
import { freePort } from '../util/net.ts';
import { LIBPQ_SETTINGS, type RunResult, runCaptured } from './programs.ts';
import { shellQuote } from './recovery-settings.ts';

export interface ClusterOptions {
  /** Where initdb, pg_ctl, psql and pgbench are. */
  binDirectory: string;
  /** init: the (empty) directory to make the cluster in, which destroy() removes; default a new temp directory. */
  root?: string;
  /** init: data page checksums (initdb -k). */
  dataChecksums?: boolean;
  /** As root: the OS user who runs the server and its programs, and owns the cluster's files. */
  osUser?: string;
  /** Server settings written to postgresql.conf. */
  settings?: Record<string, string | number>;
  /** Server settings given on its command line at start, where they win over every configuration file. */
  startSettings?: Record<string, string | number>;
  /** The role PostgreSQL's programs connect as (default postgres). */
  superuser?: string;
  /** Environment for the server, so archive_command and restore_command inherit it. */
  env?: Record<string, string>;
  walSegmentSizeMiB?: number;
  /** Processes that serve the cluster (walship's background helpers), killed with it by destroy(). */
  helperPids?(cluster: PostgresCluster): number[];
  /** A program that runs longer than this is killed and fails (default 180 s). */
  programTimeoutMs?: number;
}

const DEFAULT_PROGRAM_TIMEOUT_MS = 180_000;
const SUPERUSER = 'postgres';

const ownerIds = new Map<string, { uid: number; gid: number }>();

/** Gives `path` to `osUser` when running as root, so PostgreSQL's programs run as that user can use it. */
export function giveToOsUser(path: string, osUser: string | undefined): void {
  if (!osUser || process.getuid?.() !== 0) return;
  let owner = ownerIds.get(osUser);
  if (!owner) {
    owner = { uid: Number(execFileSync('id', ['-u', osUser])), gid: Number(execFileSync('id', ['-g', osUser])) };
    ownerIds.set(osUser, owner);
  }
  chownSync(path, owner.uid, owner.gid);
}

/** A new temp directory owned by `osUser` (as root), removed by the caller. */
export function makeOwnedDirectory(prefix: string, osUser: string | undefined): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  giveToOsUser(directory, osUser);
  return directory;
}

function quote(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

export class PostgresCluster {
  readonly root: string;
  readonly dataDir: string;
  readonly port: number;
  private readonly options: ClusterOptions;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(root: string, dataDir: string, port: number, options: ClusterOptions) {
    this.root = root;
    this.dataDir = dataDir;
    this.port = port;
    this.options = options;
    // The caller's libpq settings (a service file, a host address) could lead the cluster's programs to another server.
    const inherited = { ...process.env };
    for (const name of LIBPQ_SETTINGS) delete inherited[name];
    const superuser = options.superuser ?? SUPERUSER;
    this.env = { ...inherited, ...options.env, PGHOST: root, PGPORT: String(port), PGUSER: superuser, PGDATABASE: 'postgres' };
  }

  /** initdb a new cluster in its own directory. */
  static async init(options: ClusterOptions): Promise<PostgresCluster> {
    const root = options.root ?? makeOwnedDirectory('walship-pg-', options.osUser);
    const dataDir = join(root, 'data');
    const args = ['-D', dataDir, '-A', 'trust', '-U', options.superuser ?? SUPERUSER, '--no-sync', '-E', 'UTF8', '--locale=C'];
    if (options.walSegmentSizeMiB) args.push(`--wal-segsize=${options.walSegmentSizeMiB}`);
    if (options.dataChecksums) args.push('--data-checksums');
    const cluster = new PostgresCluster(root, dataDir, await freePort(), options);
    await cluster.check('initdb', args);
    cluster.configure({
      listen_addresses: '',
      unix_socket_directories: root,
      port: cluster.port,
      shared_buffers: '32MB',
      max_wal_size: '1GB',
      ...options.settings,
    });
    return cluster;
  }

  /** A cluster over an existing data directory (a restored backup), its socket in `root`. */
  static async adopt(dataDir: string, root: string, options: ClusterOptions): Promise<PostgresCluster> {
    const cluster = new PostgresCluster(root, dataDir, await freePort(), options);
    cluster.configure({ unix_socket_directories: root, port: cluster.port, ...options.settings });
    return cluster;
  }

  configure(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([name, value]) => `${name} = ${quote(value)}\n`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), lines.join(''));
  }

  /** The libpq settings that reach this cluster, for client programs run elsewhere. */
  get clientEnvironment(): NodeJS.ProcessEnv {
    return { ...this.env };
  }

  get logFile(): string {
    return join(this.root, 'server.log');
  }

  /** Starts the server and waits until it accepts connections, or with `wait: false` returns once it is launched. */
  async start(options: { wait?: boolean } = {}): Promise<void> {
    const waiting = options.wait === false ? ['-W'] : ['-w', '-t', '120'];
    const result = await this.run('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, ...waiting, ...this.startOptions(), 'start']);
    if (result.code !== 0) throw new WalshipError(`pg_ctl start failed (${result.code}): ${this.tailLog()}`);
  }

  /**
   * pg_ctl's -o: the server's command-line settings (its port and socket
   * always: a restored postgresql.auto.conf could name others), for the
   * shell pg_ctl runs it with.
   */
  startOptions(): string[] {
    const settings = { ...this.options.startSettings, port: this.port, unix_socket_directories: this.root };
    return ['-o', shellQuote(Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]))];
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(join(this.dataDir, 'postmaster.pid'))) return;
    await this.run('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  /** The postmaster's PID, if it is running. */
  pid(): number | undefined {
    const file = join(this.dataDir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** Stops the server and its helpers (by PID if need be) and removes everything. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined); // whatever is left is killed next
    for (const pid of [this.pid(), ...(this.options.helperPids?.(this) ?? [])]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited already
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  tailLog(lines = 30): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n') : '(no server log)';
  }

  /** Runs SQL and returns the unaligned, tuples-only output. */
  async sql(statement: string, database = 'postgres'): Promise<string> {
    return (await this.check('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', statement])).trim();
  }

  async pgbench(args: string[]): Promise<void> {
    await this.check('pgbench', [...args, 'postgres']);
  }

  /** Runs a PostgreSQL client program against this server; returns its output. */
  async client(program: string, args: string[]): Promise<string> {
    return this.check(program, args);
  }

  /** Switches to a new segment and waits until the old one is archived; returns its name. */
  async switchAndWaitArchived(timeoutMs = 60_000): Promise<string> {
    const segment = await this.sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    await this.sql('SELECT pg_switch_wal()');
    await this.waitArchived(segment, timeoutMs);
    return segment;
  }

  async waitArchived(segment: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [lastArchived = '', failed = ''] = (await this.sql('SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver')).split('|');
      // A .backup file (<segment>.<offset>.backup) is archived after its segment.
      if (/^[0-9A-F]{24}/.test(lastArchived) && lastArchived.slice(0, 24) >= segment) return;
      if (Date.now() > deadline) {
        throw new WalshipError(`segment ${segment} was not archived in time (last archived ${lastArchived}, last failed ${failed}): ${this.tailLog()}`);
      }
      await sleep(100);
    }
  }

  /** Waits until recovery ends and the server accepts writes. */
  async waitPromoted(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.sql('SELECT pg_is_in_recovery()')) !== 'f') {
      if (Date.now() > deadline) throw new WalshipError(`recovery did not finish in time: ${this.tailLog()}`);
      await sleep(100);
    }
  }

  /** Writes a file into the data directory, owned by the cluster's OS user. */
  writeFile(relativePath: string, content: string): void {
    const path = join(this.dataDir, relativePath);
    writeFileSync(path, content);
    giveToOsUser(path, this.options.osUser);
  }

  /** Runs one of PostgreSQL's programs against this server; its exit code is the caller's to judge. */
  run(program: string, args: string[]): Promise<RunResult> {
    const { binDirectory, osUser, programTimeoutMs = DEFAULT_PROGRAM_TIMEOUT_MS } = this.options;
    return runCaptured(join(binDirectory, program), args, this.env, { osUser, timeoutMs: programTimeoutMs });
  }

  /** Like run(), but a non-zero exit is an error carrying the output. */
  private async check(program: string, args: string[]): Promise<string> {
    const result = await this.run(program, args);
    if (result.code !== 0) throw new WalshipError(`${program} ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
    return result.stdout;
  }
}
