/**
 * Throwaway PostgreSQL clusters for tests and the demo: a private temp
 * directory owned by the postgres OS user, a free port, a Unix socket in
 * that directory, and a stop by PID at the end.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { postgresBin } from './paths.ts';
import { check, freePort, giveToPostgres, pidInFile, run } from './processes.ts';

export interface ClusterOptions {
  /** Server settings written to postgresql.conf. */
  settings?: Record<string, string | number>;
  /** Environment for the server, so archive_command and restore_command inherit it. */
  env?: Record<string, string>;
  walSegmentSizeMiB?: number;
}

/** A directory the postgres user owns, removed by the caller. */
export function makePostgresOwnedDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  giveToPostgres(directory);
  return directory;
}

function quote(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

export class PostgresCluster {
  readonly root: string;
  readonly dataDir: string;
  readonly port: number;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(root: string, dataDir: string, port: number, env: Record<string, string>) {
    this.root = root;
    this.dataDir = dataDir;
    this.port = port;
    this.env = { ...process.env, ...env, PGHOST: root, PGPORT: String(port), PGUSER: 'postgres', PGDATABASE: 'postgres' };
  }

  /** initdb a new cluster in its own temp directory. */
  static async init(options: ClusterOptions = {}): Promise<PostgresCluster> {
    const root = makePostgresOwnedDirectory('walship-pg-');
    const dataDir = join(root, 'data');
    const args = ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'];
    if (options.walSegmentSizeMiB) args.push(`--wal-segsize=${options.walSegmentSizeMiB}`);
    await check(join(postgresBin, 'initdb'), args, { asPostgres: true });
    const cluster = new PostgresCluster(root, dataDir, await freePort(), options.env ?? {});
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

  /** A cluster over an existing data directory (a restored backup), in its own temp root. */
  static async adopt(dataDir: string, root: string, options: ClusterOptions = {}): Promise<PostgresCluster> {
    const cluster = new PostgresCluster(root, dataDir, await freePort(), options.env ?? {});
    cluster.configure({ unix_socket_directories: root, port: cluster.port, ...options.settings });
    return cluster;
  }

  configure(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([name, value]) => `${name} = ${quote(value)}\n`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), lines.join(''));
  }

  get logFile(): string {
    return join(this.root, 'server.log');
  }

  async start(): Promise<void> {
    const result = await run(join(postgresBin, 'pg_ctl'), ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '120', 'start'], {
      asPostgres: true,
      env: this.env,
    });
    if (result.code !== 0) throw new Error(`pg_ctl start failed (${result.code}): ${this.tailLog()}`);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(join(this.dataDir, 'postmaster.pid'))) return;
    await run(join(postgresBin, 'pg_ctl'), ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], { asPostgres: true, env: this.env });
  }

  /** The postmaster's PID, if it is running. */
  pid(): number | undefined {
    const file = join(this.dataDir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** PIDs of walship's background processes for this cluster (look-ahead pushers, the prefetcher). */
  private walshipHelpers(): number[] {
    const spool = join(this.root, `.walship-${basename(this.dataDir)}`);
    const pidFiles = [join(spool, 'prefetch', '.prefetcher.pid')];
    const archived = join(spool, 'archived');
    if (existsSync(archived)) for (const archive of readdirSync(archived)) pidFiles.push(join(archived, archive, '.pusher.pid'));
    return pidFiles.map(pidInFile).filter((pid) => pid !== undefined);
  }

  /** Stops the server and walship's helpers (by PID if need be) and removes everything. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    for (const pid of [this.pid(), ...this.walshipHelpers()]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  tailLog(lines = 30): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n') : '(no server log)';
  }

  /** Runs SQL and returns the unaligned, tuples-only output. */
  async sql(statement: string, database = 'postgres'): Promise<string> {
    const stdout = await check(join(postgresBin, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', statement], {
      asPostgres: true,
      env: this.env,
    });
    return stdout.trim();
  }

  async pgbench(args: string[]): Promise<void> {
    await check(join(postgresBin, 'pgbench'), [...args, 'postgres'], { asPostgres: true, env: this.env });
  }

  /** Runs a PostgreSQL client program against this server. */
  async client(program: string, args: string[]): Promise<string> {
    return check(join(postgresBin, program), args, { asPostgres: true, env: this.env });
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
      if (lastArchived >= segment && lastArchived.length === 24) return;
      if (Date.now() > deadline) {
        throw new Error(`segment ${segment} was not archived in time (last archived ${lastArchived}, last failed ${failed}): ${this.tailLog()}`);
      }
      await sleep(100);
    }
  }

  /** Waits until recovery ends and the server accepts writes. */
  async waitPromoted(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.sql('SELECT pg_is_in_recovery()')) !== 'f') {
      if (Date.now() > deadline) throw new Error(`recovery did not finish in time: ${this.tailLog()}`);
      await sleep(100);
    }
  }

  writeFile(relativePath: string, content: string): void {
    const path = join(this.dataDir, relativePath);
    writeFileSync(path, content);
    giveToPostgres(path);
  }
}
