/**
 * Throwaway PostgreSQL clusters for tests, the demo and the benchmarks: the
 * product's cluster (src/postgres/cluster.ts) with the test machine's
 * PostgreSQL, run as the postgres OS user when root, and walship's background
 * helpers stopped with it.
 */
import { basename, join } from 'node:path';
import { type ClusterOptions, makeOwnedDirectory, PostgresCluster as Cluster } from '../../src/postgres/cluster.ts';
import { helperPidFiles, spoolNextTo } from '../../src/wal/spool.ts';
import { postgresBin } from './paths.ts';
import { pidInFile, POSTGRES_USER } from './processes.ts';

export type PostgresCluster = Cluster;

/** PIDs of walship's background processes for a cluster (look-ahead pushers, the prefetcher), from its spool next to the data directory. */
function walshipHelpers(cluster: Cluster): number[] {
  return helperPidFiles(spoolNextTo(join(cluster.root, basename(cluster.dataDir)))).map(pidInFile).filter((pid) => pid !== undefined);
}

/** Clusters of this machine's PostgreSQL (PG_BIN), run as the postgres OS user when root, stopped with walship's helpers. */
export const LOCAL_CLUSTER: ClusterOptions = { binDirectory: postgresBin, osUser: POSTGRES_USER, helperPids: walshipHelpers };

export const PostgresCluster = {
  /** initdb a new cluster in its own temp directory. */
  init: (options: Partial<ClusterOptions> = {}) => Cluster.init({ ...LOCAL_CLUSTER, ...options }),
  /** A cluster over an existing data directory (a restored backup), in its own temp root. */
  adopt: (dataDir: string, root: string, options: Partial<ClusterOptions> = {}) => Cluster.adopt(dataDir, root, { ...LOCAL_CLUSTER, ...options }),
};

/** A directory the postgres user owns, removed by the caller. */
export function makePostgresOwnedDirectory(prefix: string): string {
  return makeOwnedDirectory(prefix, POSTGRES_USER);
}
