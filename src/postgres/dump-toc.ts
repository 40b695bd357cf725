/**
 * A custom-format archive's table of contents, as pg_restore prints it, and
 * the entries that bring back whole tables. `pg_restore --table` restores a
 * table's definition and rows only, without its indexes, constraints,
 * triggers, defaults, owned sequences or grants; pg_dump --table dumps those
 * too. So walship reads the TOC twice (`--list` for every entry's line, and
 * the verbose schema-only SQL for each entry's dependencies), selects each
 * named table with the entries that belong to it, and gives pg_restore that
 * list (-L).
 */
import { ConfigError } from '../errors.ts';

export interface TocEntry {
  id: number;
  /** The entry's kind: TABLE, INDEX, FK CONSTRAINT, TABLE DATA, ... */
  desc: string;
  schema: string;
  /** Its name: "coupons" for a table, "coupons coupons_pkey" for a constraint, "TABLE coupons" for an ACL. */
  tag: string;
  dependencies: number[];
  /** Its line in the --list output, for pg_restore -L. */
  line: string;
}

const RELATIONS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE', 'SEQUENCE']);
/** Entries that belong to a relation and go with it. */
const BELONGING = new Set([
  'COMMENT', 'ACL', 'SECURITY LABEL', 'SEQUENCE', 'SEQUENCE OWNED BY', 'DEFAULT', 'CONSTRAINT', 'CHECK CONSTRAINT', 'FK CONSTRAINT',
  'INDEX', 'TRIGGER', 'RULE', 'POLICY', 'ROW SECURITY', 'STATISTICS', 'MATERIALIZED VIEW DATA',
]);
/** The entries holding a relation's data: --list shows them, the schema-only SQL does not. */
const DATA_OF: Record<string, string> = { TABLE: 'TABLE DATA', SEQUENCE: 'SEQUENCE SET', 'MATERIALIZED VIEW': 'MATERIALIZED VIEW DATA' };

/** Joins `pg_restore --list` and `pg_restore --schema-only --verbose -f -` of the same archive into its entries. */
export function parseToc(listText: string, verboseText: string): TocEntry[] {
  const described = new Map<number, Omit<TocEntry, 'line'>>();
  let current: { id: number; dependencies: number[] } | undefined;
  for (const line of verboseText.split('\n')) {
    const entry = /^-- TOC entry (\d+) /.exec(line);
    if (entry) current = { id: Number(entry[1]), dependencies: [] };
    const dependencies = /^-- Dependencies: ([\d ]+)$/.exec(line);
    if (dependencies && current) current.dependencies = dependencies[1]!.trim().split(/\s+/).map(Number);
    const name = /^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$/.exec(line);
    if (name && current) {
      described.set(current.id, { id: current.id, desc: name[2]!, schema: name[3]!, tag: name[1]!, dependencies: current.dependencies });
      current = undefined;
    }
  }
  const listed = listText.split('\n').flatMap((line) => {
    const match = /^(\d+); \d+ \d+ (.*)$/.exec(line);
    return match ? [{ id: Number(match[1]), rest: match[2]!, line }] : [];
  });
  // Data entries are matched to their relation by what --list prints for them: "<data kind> <schema> <tag> <owner>".
  const relationOfData = new Map<string, Omit<TocEntry, 'line'>>();
  for (const { id, rest } of listed) {
    const relation = described.get(id);
    const dataKind = relation && DATA_OF[relation.desc];
    if (dataKind && rest.startsWith(`${relation.desc} `)) relationOfData.set(`${dataKind} ${rest.slice(relation.desc.length + 1)}`, relation);
  }
  return listed.map(({ id, rest, line }) => {
    const known = described.get(id);
    if (known) return { ...known, line };
    const relation = relationOfData.get(rest);
    if (relation) return { id, desc: DATA_OF[relation.desc]!, schema: relation.schema, tag: relation.tag, dependencies: [relation.id], line };
    return { id, desc: rest, schema: '', tag: '', dependencies: [], line };
  });
}

export interface TableSelection {
  /** The entries to restore, in archive order. */
  entries: TocEntry[];
  /** Entries of other objects that depend on the selected tables (views, other tables' foreign keys): not restored. */
  leftOut: TocEntry[];
}

/**
 * The named tables (a bare name, or schema.name; `schemas` narrows bare
 * names) with everything that belongs to them. An unknown table is a
 * ConfigError naming the tables the archive has.
 */
export function selectTables(entries: readonly TocEntry[], tables: readonly string[], schemas: readonly string[] = []): TableSelection {
  const byId = new Map(entries.map((entry) => [entry.id, entry]));
  const relations = entries.filter((entry) => RELATIONS.has(entry.desc));
  const selected = new Set<number>();
  for (const table of tables) {
    let roots = relations.filter((entry) => entry.tag === table && (schemas.length === 0 || schemas.includes(entry.schema)));
    const dot = table.indexOf('.');
    if (roots.length === 0 && dot > 0) roots = relations.filter((entry) => entry.schema === table.slice(0, dot) && entry.tag === table.slice(dot + 1));
    if (roots.length === 0) {
      const known = relations.filter((entry) => entry.desc === 'TABLE').map((entry) => `${entry.schema}.${entry.tag}`);
      const shown = known.length > 12 ? `${known.slice(0, 12).join(', ')}, ...` : known.join(', ') || 'none';
      throw new ConfigError(`--table ${table}: the dump has no such table${schemas.length ? ` in schema ${schemas.join(', ')}` : ''} (its tables: ${shown})`);
    }
    for (const root of roots) selected.add(root.id);
  }
  const ownerOf = (entry: TocEntry): number | undefined => {
    const dependencies = entry.dependencies.map((id) => byId.get(id)).filter((dependency) => dependency !== undefined);
    // "orders orders_customer_fkey" belongs to orders, though it also depends on customers.
    const named = dependencies.find((dependency) => RELATIONS.has(dependency.desc) && dependency.schema === entry.schema && entry.tag.startsWith(`${dependency.tag} `));
    // Else the relation it hangs on (an index's table, an owned sequence's), else the object it describes (a comment's index); never its schema.
    return (named ?? dependencies.find((dependency) => RELATIONS.has(dependency.desc)) ?? dependencies.find((dependency) => dependency.desc !== 'SCHEMA'))?.id;
  };
  for (let grown = true; grown; ) {
    grown = false;
    for (const entry of entries) {
      if (selected.has(entry.id) || (!BELONGING.has(entry.desc) && !Object.values(DATA_OF).includes(entry.desc))) continue;
      const owner = ownerOf(entry);
      if (owner !== undefined && selected.has(owner)) {
        selected.add(entry.id);
        grown = true;
      }
    }
  }
  return {
    entries: entries.filter((entry) => selected.has(entry.id)),
    leftOut: entries.filter((entry) => !selected.has(entry.id) && entry.dependencies.some((id) => selected.has(id))),
  };
}

/** Whether the archive has anything in `schema` (pg_restore -n restores nothing, and says nothing, for an unknown one). */
export function requireSchemas(entries: readonly TocEntry[], schemas: readonly string[]): void {
  for (const schema of schemas) {
    if (!entries.some((entry) => entry.schema === schema || (entry.desc === 'SCHEMA' && entry.tag === schema))) {
      const known = [...new Set(entries.map((entry) => entry.schema).filter((name) => name && name !== '-'))].join(', ') || 'none';
      throw new ConfigError(`--schema ${schema}: the dump has nothing in such a schema (its schemas: ${known})`);
    }
  }
}

/** "TABLE public coupons" for messages. */
export function describeEntry(entry: TocEntry): string {
  return `${entry.desc} ${entry.schema && entry.schema !== '-' ? `${entry.schema}.` : ''}${entry.tag}`;
}
