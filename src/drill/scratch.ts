/**
 * A drill's scratch directory and server: a fresh directory (mode 0700)
 * holding the restored data directory, the spool that restore_command's
 * settings and prefetched WAL go to, the server log and the Unix socket, so
 * the scratch server can never collide with, or be reached like, the
 * production server on the same host. Removing the directory removes
 * everything the drill made on this host.
 */
import { mkdtemp, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ConfigError, describeError, WalshipError } from '../errors.ts';
import { isMissing } from '../fs/missing.ts';
import { log } from '../log/logger.ts';
import { PostgresCluster } from '../postgres/cluster.ts';
import { hasDataChecksums, parseControlData, recoveryMinimumSettings } from '../postgres/control-file.ts';
import { ISOLATED_HBA, ISOLATED_HBA_FILE, ISOLATED_IDENT_FILE, isolatedServerSettings } from '../postgres/isolated-server.ts';
import { runCaptured } from '../postgres/programs.ts';
import { shellQuote } from '../postgres/recovery-settings.ts';
import { formatBytes } from '../progress/progress.ts';
import { PidFile } from '../wal/background.ts';
import { helperPidFiles } from '../wal/spool.ts';

/** The programs a drill runs, all from one PostgreSQL installation. */
export const DRILL_PROGRAMS = ['pg_ctl', 'postgres', 'psql', 'pg_dumpall', 'pg_controldata'] as const;
/** A dump drill makes its server with initdb and restores with pg_restore. */
export const DUMP_DRILL_PROGRAMS = ['initdb', 'pg_ctl', 'postgres', 'psql', 'pg_dumpall', 'pg_dump', 'pg_restore'] as const;

/** A Unix socket path is at most 107 bytes. */
const MAX_SOCKET_PATH = 107;
const DIRECTORY_PREFIX = 'walship-drill-';
/** Checks can run for hours on a large cluster: they are stopped by interruption, not by a timeout. */
const NO_PROGRAM_TIMEOUT_MS = 2 ** 31 - 1;
/** Settings for the drill's own sessions, over any a database or role sets. */
const SESSION_OPTIONS = '-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off';

export function interrupted(): WalshipError {
  return new WalshipError('the drill was interrupted (SIGINT or SIGTERM)');
}

export class Scratch {
  readonly root: string;
  readonly dataDirectory: string;
  /** WALSHIP_SPOOL_DIR of the scratch cluster: its recovery settings and prefetched WAL. */
  readonly spool: string;
  private server: { cluster: PostgresCluster; binDirectory: string } | undefined;

  private constructor(root: string) {
    this.root = root;
    this.dataDirectory = join(root, 'data');
    this.spool = join(root, 'spool');
  }

  /** A new scratch directory in `parent`, refused at once when its file system cannot hold what is restored (`needs`: the backup's or dump set's name and size). */
  static async create(parent: string, needs: { name: string; bytes: number }): Promise<Scratch> {
    const stats = await stat(parent).catch((error: unknown) => {
      throw new ConfigError(`--scratch ${parent}: ${isMissing(error) ? 'no such directory' : describeError(error)}: give an existing directory`);
    });
    if (!stats.isDirectory()) throw new ConfigError(`--scratch ${parent} is not a directory: give an existing directory`);
    const socket = join(parent, `${DIRECTORY_PREFIX}XXXXXX`, '.s.PGSQL.65535');
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new ConfigError(`--scratch ${parent} is too long a path for the scratch server's Unix socket (${socket} is over ${MAX_SOCKET_PATH} bytes): choose a shorter one`);
    }
    const space = await statfs(parent);
    const free = space.bavail * space.bsize;
    if (free < needs.bytes) {
      throw new ConfigError(
        `the file system of ${parent} has ${formatBytes(free)} free, but ${needs.name} needs ${formatBytes(needs.bytes)} restored: free space there, or give another directory with --scratch DIR`,
      );
    }
    return new Scratch(await mkdtemp(join(parent, DIRECTORY_PREFIX)));
  }

  /**
   * Starts the restored cluster with the isolating settings (postgres/isolated-server.ts)
   * and returns without waiting: recovery is awaited by the caller.
   */
  async startServer(binDirectory: string): Promise<{ server: PostgresCluster; dataChecksums: boolean }> {
    const report = await runCaptured(join(binDirectory, 'pg_controldata'), [this.dataDirectory], { ...process.env, LC_ALL: 'C' });
    if (report.code !== 0) throw new WalshipError(`pg_controldata cannot read the restored cluster: ${report.stderr.trim()}`);
    const controlData = parseControlData(report.stdout);
    await writeFile(join(this.root, ISOLATED_HBA_FILE), ISOLATED_HBA, { mode: 0o600 });
    await writeFile(join(this.root, ISOLATED_IDENT_FILE), '', { mode: 0o600 });
    const server = await PostgresCluster.adopt(this.dataDirectory, this.root, {
      binDirectory,
      // restore_command's wal-fetch reads its settings from the spool's file, but the environment wins over it.
      env: { WALSHIP_SPOOL_DIR: this.spool, PGOPTIONS: SESSION_OPTIONS },
      startSettings: isolatedServerSettings({ root: this.root, dataDirectory: this.dataDirectory, recoveryMinimums: recoveryMinimumSettings(controlData) }),
      // The bootstrap superuser is, as initdb makes it, named after the OS user that runs the server.
      superuser: userInfo().username,
      programTimeoutMs: NO_PROGRAM_TIMEOUT_MS,
    });
    this.server = { cluster: server, binDirectory };
    await server.start({ wait: false });
    return { server, dataChecksums: hasDataChecksums(controlData) };
  }

  /**
   * A new cluster (initdb, with data page checksums) for a dump drill,
   * started with the same isolating settings, and ready when it returns.
   */
  async initServer(binDirectory: string): Promise<PostgresCluster> {
    await writeFile(join(this.root, ISOLATED_HBA_FILE), ISOLATED_HBA, { mode: 0o600 });
    await writeFile(join(this.root, ISOLATED_IDENT_FILE), '', { mode: 0o600 });
    const server = await PostgresCluster.init({
      binDirectory,
      root: this.root,
      dataChecksums: true,
      env: { PGOPTIONS: SESSION_OPTIONS },
      startSettings: isolatedServerSettings({ root: this.root, dataDirectory: this.dataDirectory, recoveryMinimums: {} }),
      superuser: userInfo().username,
      programTimeoutMs: NO_PROGRAM_TIMEOUT_MS,
    });
    this.server = { cluster: server, binDirectory };
    await server.start();
    return server;
  }

  /**
   * Stops the server and walship's prefetcher, and removes the directory;
   * with `keep`, stops them and returns how to start the cluster again and
   * how to remove it.
   */
  async cleanUp(keep: boolean): Promise<string[]> {
    for (const file of helperPidFiles(this.spool)) {
      const pid = await new PidFile(file).holder();
      if (pid) process.kill(pid, 'SIGTERM');
    }
    if (keep) {
      if (!this.server) return [`kept ${this.root}; remove it with: rm -rf ${shellQuote([this.root])}`];
      const { cluster, binDirectory } = this.server;
      await cluster.stop('fast');
      const program = (name: string) => join(binDirectory, name);
      return [
        `kept the restored cluster, stopped, in ${this.root}`,
        `  start it: ${shellQuote([program('pg_ctl'), '-D', this.dataDirectory, '-l', cluster.logFile, ...cluster.startOptions(), 'start'])}`,
        `  connect:  ${shellQuote([program('psql'), '-h', this.root, '-p', String(cluster.port), '-d', 'postgres'])}`,
        `  stop it:  ${shellQuote([program('pg_ctl'), '-D', this.dataDirectory, 'stop'])}`,
        `  remove it (its spool holds the storage settings): rm -rf ${shellQuote([this.root])}`,
      ];
    }
    try {
      if (this.server) await this.server.cluster.destroy();
      else await rm(this.root, { recursive: true, force: true });
    } catch (error) {
      log.warning(`could not remove the drill's scratch directory: delete ${this.root}`, { reason: describeError(error) });
    }
    return [];
  }
}
