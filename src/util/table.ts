/** The tables list commands print: columns separated by two spaces, or boxed with --pretty. */

export type Row = Record<string, string>;

/** Columns separated by two spaces, headers first. */
export function plainTable(rows: Row[]): string {
  const columns = Object.keys(rows[0] ?? {});
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, index) => cell.padEnd(widths[index]!)).join('  ').trimEnd();
  return [line(columns), ...rows.map((row) => line(columns.map((column) => row[column]!)))].join('\n');
}

/** A boxed table, for people. */
export function prettyTable(rows: Row[]): string {
  const columns = Object.keys(rows[0] ?? {});
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => row[column]!.length)));
  const rule = `+${widths.map((width) => '-'.repeat(width + 2)).join('+')}+`;
  const line = (cells: string[]) => `| ${cells.map((cell, index) => cell.padEnd(widths[index]!)).join(' | ')} |`;
  return [rule, line(columns.map((column) => column.toUpperCase())), rule, ...rows.map((row) => line(columns.map((column) => row[column]!))), rule].join('\n');
}
