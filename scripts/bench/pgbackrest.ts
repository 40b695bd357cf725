/**
 * pgBackRest 2.45 (Debian's package), the peer every figure is compared with:
 * a posix repository on the same file system, zst at walship's level, one
 * stanza per repository. Async mode gets a spool path and both cores.
 */
import { join } from 'node:path';
import type { PostgresCluster } from '../../src/postgres/cluster.ts';
import { check } from '../../test/support/processes.ts';
import { postgresDirectory, writePostgresFile } from './common.ts';

export const STANZA = 'bench';

export interface PgBackRestOptions {
  /** Directory for the repository, config, spool, lock and log paths (recreated, owned by postgres). */
  home: string;
  /** The cluster whose WAL is archived, or the one being restored. */
  dataDir: string;
  socketDir?: string;
  port?: number;
  compressLevel: number;
  async?: boolean;
  /** Repository options (repo1-*) instead of a posix repository in `home`/repo: another target, or the archive a drain wrote. */
  repository?: string[];
}

export interface PgBackRest {
  config: string;
  /** The posix repository's path, when it is the default one in `home`. */
  repo: string | undefined;
  /** `pgbackrest --config=... --stanza=bench <args>`, for archive_command / restore_command. */
  command(args: string): string;
}

export function configurePgBackRest(options: PgBackRestOptions): PgBackRest {
  postgresDirectory(options.home);
  const repo = options.repository ? undefined : postgresDirectory(join(options.home, 'repo'));
  const paths = Object.fromEntries(['spool', 'lock', 'log'].map((name) => [name, postgresDirectory(join(options.home, name))]));
  const lines = [
    '[global]',
    ...(options.repository ?? posixRepository(repo!)),
    'compress-type=zst',
    `compress-level=${options.compressLevel}`,
    `spool-path=${paths.spool}`,
    `lock-path=${paths.lock}`,
    `log-path=${paths.log}`,
    'log-level-console=warn',
    'log-level-stderr=off',
    'log-level-file=off',
    ...(options.async ? ['archive-async=y', 'process-max=2'] : []),
    '',
    `[${STANZA}]`,
    `pg1-path=${options.dataDir}`,
    ...(options.socketDir ? [`pg1-socket-path=${options.socketDir}`] : []),
    ...(options.port ? [`pg1-port=${options.port}`] : []),
    'pg1-user=postgres',
    '',
  ];
  const config = writePostgresFile(join(options.home, 'pgbackrest.conf'), lines.join('\n'));
  return { config, repo, command: (args) => `pgbackrest --config=${config} --stanza=${STANZA} ${args}` };
}

export function posixRepository(path: string): string[] {
  return [`repo1-path=${path}`, 'repo1-type=posix'];
}

/** Creates the stanza in the repository; the cluster must be running. */
export async function createStanza(pgbackrest: PgBackRest, cluster: PostgresCluster): Promise<void> {
  await check('pgbackrest', [`--config=${pgbackrest.config}`, `--stanza=${STANZA}`, 'stanza-create'], { asPostgres: true, cwd: cluster.dataDir });
}
