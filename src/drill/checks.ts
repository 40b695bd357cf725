/**
 * The checks a drill runs on the promoted scratch server, each with its
 * result: every database accepts a connection; amcheck's bt_index_check over
 * every B-tree index of every database; a full read of every table
 * (pg_dumpall to nowhere, which also verifies data page checksums where the
 * cluster has them); and the user's own statements, each of which must
 * return a single true value.
 */
import type { CheckState } from '../checks/verdict.ts';
import type { PostgresCluster } from '../postgres/cluster.ts';
import { databaseConninfo } from '../postgres/programs.ts';
import type { SqlStatement } from '../postgres/sql-script.ts';

export interface CheckOutcome {
  state: CheckState;
  message: string;
}

const PSQL = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1'];
/** Messages quote at most this much of a program's output or a statement. */
const QUOTED_CHARS = 300;

function quoted(text: string): string {
  const line = text.trim().replace(/\s+/g, ' ');
  return line.length > QUOTED_CHARS ? `${line.slice(0, QUOTED_CHARS)}...` : line;
}

/** The lines of a program's stderr that say what went wrong. */
function problem(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  return quoted((lines.filter((line) => /ERROR|FATAL|error:|detail:/.test(line)).slice(0, 3).join(' / ') || lines.slice(0, 3).join(' / ')) || '(no message)');
}

function psql(cluster: PostgresCluster, database: string, ...statements: string[]) {
  return cluster.run('psql', [...PSQL, '-d', databaseConninfo(database), ...statements.flatMap((statement) => ['-c', statement])]);
}

/** The databases that take connections (template0 does not), each tried. */
export async function checkConnections(cluster: PostgresCluster): Promise<CheckOutcome & { databases: string[] }> {
  const listed = await psql(cluster, 'postgres', 'SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname');
  if (listed.code !== 0) return { state: 'CRITICAL', message: `cannot list the databases: ${problem(listed.stderr)}`, databases: [] };
  const databases = listed.stdout.split('\n').filter(Boolean);
  const refused: string[] = [];
  for (const database of databases) {
    const result = await psql(cluster, database, 'SELECT 1');
    if (result.code !== 0) refused.push(`${database} (${problem(result.stderr)})`);
  }
  if (refused.length > 0) return { state: 'CRITICAL', message: `${refused.length} of ${databases.length} databases refuse connections: ${refused.join('; ')}`, databases };
  return { state: 'OK', message: `${databases.length} databases accept connections`, databases };
}

/**
 * bt_index_check over each valid B-tree index, one transaction per index so
 * that locks never pile up; each failure is reported as a warning naming the
 * index, and the checking goes on.
 */
const AMCHECK_PROCEDURE = `CREATE PROCEDURE pg_temp.walship_amcheck(INOUT checked bigint, INOUT failed bigint) LANGUAGE plpgsql AS $walship$
DECLARE
  amcheck_schema text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'amcheck');
  target record;
BEGIN
  FOR target IN
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
    WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
    ORDER BY n.nspname, c.relname
  LOOP
    BEGIN
      EXECUTE format('SELECT %s.bt_index_check($1)', amcheck_schema) USING target.oid;
    EXCEPTION WHEN OTHERS THEN
      failed := failed + 1;
      RAISE WARNING 'walship amcheck: index % in database %: %', target.name, current_database(), SQLERRM;
    END;
    checked := checked + 1;
    COMMIT;
  END LOOP;
END
$walship$`;
const AMCHECK_FAILURE = /walship amcheck: (.*)$/gm;

export async function checkIndexes(cluster: PostgresCluster, databases: readonly string[]): Promise<CheckOutcome> {
  let checked = 0;
  const corrupt: string[] = [];
  const unchecked: string[] = [];
  for (const database of databases) {
    const installed = await psql(cluster, database, 'CREATE EXTENSION IF NOT EXISTS amcheck');
    if (installed.code !== 0) {
      const reason = problem(installed.stderr);
      // Not the backup's fault: the drill could not check.
      if (/could not open extension control file|is not available/.test(reason)) {
        return { state: 'UNKNOWN', message: `amcheck is not installed for this PostgreSQL (${reason}): install its contrib package (Debian's postgresql-NN has it)` };
      }
      unchecked.push(`cannot create the amcheck extension in database ${database}: ${reason}`);
      continue;
    }
    const result = await psql(cluster, database, AMCHECK_PROCEDURE, 'CALL pg_temp.walship_amcheck(0, 0)');
    corrupt.push(...[...result.stderr.matchAll(AMCHECK_FAILURE)].map((match) => quoted(match[1]!)));
    if (result.code !== 0) unchecked.push(`amcheck stopped in database ${database}: ${problem(result.stderr)}`);
    else checked += Number(result.stdout.trim().split('|')[0]);
  }
  const problems = [
    ...(corrupt.length > 0 ? [`${corrupt.length} B-tree ${corrupt.length === 1 ? 'index fails' : 'indexes fail'} bt_index_check: ${corrupt.join('; ')}`] : []),
    ...unchecked,
  ];
  if (problems.length > 0) return { state: 'CRITICAL', message: problems.join('; ') };
  return { state: 'OK', message: `${checked} B-tree indexes in ${databases.length} databases pass bt_index_check` };
}

/** Every row of every table of every database read, as pg_dumpall reads them, and thrown away. */
export async function readEveryTable(cluster: PostgresCluster, dataChecksums: boolean): Promise<CheckOutcome> {
  const result = await cluster.run('pg_dumpall', ['--no-sync', '-f', '/dev/null']);
  if (result.code !== 0) return { state: 'CRITICAL', message: `pg_dumpall could not read everything: ${problem(result.stderr)}` };
  return { state: 'OK', message: `every table read with pg_dumpall${dataChecksums ? ', data page checksums verified' : ' (the cluster has no data page checksums)'}` };
}

/** Each statement of the --check-sql file must return one row of one column, true. */
export async function runCheckSql(cluster: PostgresCluster, statements: readonly SqlStatement[], source: string): Promise<CheckOutcome> {
  const failures: string[] = [];
  for (const statement of statements) {
    const result = await psql(cluster, statement.database ?? 'postgres', statement.text);
    const where = `${source}, line ${statement.line}${statement.database ? ` (database ${statement.database})` : ''}`;
    if (result.code !== 0) failures.push(`${where} failed: ${problem(result.stderr)}: ${quoted(statement.text)}`);
    else if (result.stdout.trim() !== 't') failures.push(`${where} returned ${JSON.stringify(quoted(result.stdout) || '(no row)')}, not true: ${quoted(statement.text)}`);
  }
  if (failures.length > 0) return { state: 'CRITICAL', message: failures.join('; ') };
  return { state: 'OK', message: `${statements.length} ${statements.length === 1 ? 'statement returns' : 'statements return'} true` };
}
