import type { PostgresCluster } from './postgres.ts';

/** The libpq settings that reach a test cluster, for walship commands that connect to it. */
export function libpq(cluster: PostgresCluster): Record<string, string> {
  return { PGHOST: cluster.root, PGPORT: String(cluster.port), PGUSER: 'postgres' };
}
