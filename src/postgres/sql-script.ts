/**
 * A file of SQL statements, split the way psql splits it: at semicolons
 * outside quotes ('...', E'...', "...", $tag$...$tag$) and comments (--,
 * nested /* *\/). A line `\c NAME` or `\connect NAME` between statements
 * switches the database for the statements after it, as in psql.
 */
import { ConfigError } from '../errors.ts';

export interface SqlStatement {
  /** Undefined: the default database. */
  database: string | undefined;
  text: string;
  /** Where the statement starts in the file (1-based). */
  line: number;
}

const CONNECT = /^\\(?:c|connect)\s+("(?:[^"]|"")+"|\S+)\s*$/;

/** The statements of `script`; `source` names the file in errors. */
export function splitSqlScript(script: string, source: string): SqlStatement[] {
  const statements: SqlStatement[] = [];
  let database: string | undefined;
  let current = '';
  let startLine = 1;
  let line = 1;
  let index = 0;
  const finish = () => {
    const text = current.trim();
    if (text !== '') statements.push({ database, text, line: startLine });
    current = '';
  };
  while (index < script.length) {
    const char = script[index]!;
    const betweenStatements = current.trim() === '';
    if (char === '\\' && betweenStatements && /^[ \t]*$/.test(lineBefore(script, index))) {
      const end = script.indexOf('\n', index);
      const command = script.slice(index, end < 0 ? script.length : end).trim();
      const match = CONNECT.exec(command);
      if (!match) throw new ConfigError(`${source}, line ${line}: "${command}" is not supported: the file holds SQL statements, and \\c DATABASE lines to switch databases`);
      database = match[1]!.startsWith('"') ? match[1]!.slice(1, -1).replaceAll('""', '"') : match[1]!;
      current = '';
      index = end < 0 ? script.length : end;
      continue;
    }
    if (betweenStatements && !/\s/.test(char)) startLine = line;
    const skipped = quotedOrComment(script, index, source, line);
    if (skipped > index) {
      const text = script.slice(index, skipped);
      line += countNewlines(text);
      // Comments between statements are not part of one.
      if (!(betweenStatements && (text.startsWith('--') || text.startsWith('/*')))) current += text;
      index = skipped;
      continue;
    }
    if (char === ';') {
      finish();
    } else {
      if (char === '\n') line++;
      current += char;
    }
    index++;
  }
  finish();
  return statements;
}

function lineBefore(script: string, index: number): string {
  return script.slice(script.lastIndexOf('\n', index - 1) + 1, index);
}

function countNewlines(text: string): number {
  let count = 0;
  for (const char of text) if (char === '\n') count++;
  return count;
}

/** The index just past the quoted string or comment starting at `index`, or `index` itself when none starts there. */
function quotedOrComment(script: string, index: number, source: string, line: number): number {
  const char = script[index]!;
  const next = script[index + 1];
  const unterminated = (what: string) => new ConfigError(`${source}, line ${line}: ${what} is never closed`);
  if (char === '-' && next === '-') {
    const end = script.indexOf('\n', index);
    return end < 0 ? script.length : end;
  }
  if (char === '/' && next === '*') {
    let depth = 0;
    for (let position = index; position < script.length - 1; position++) {
      if (script[position] === '/' && script[position + 1] === '*') depth++, position++;
      else if (script[position] === '*' && script[position + 1] === '/') {
        depth--;
        position++;
        if (depth === 0) return position + 1;
      }
    }
    throw unterminated('a /* comment');
  }
  if (char === "'" || char === '"') {
    const escapes = char === "'" && /[eE]/.test(script[index - 1] ?? '') && !/[\w$]/.test(script[index - 2] ?? '');
    for (let position = index + 1; position < script.length; position++) {
      if (escapes && script[position] === '\\') position++;
      else if (script[position] === char) {
        if (script[position + 1] === char) position++;
        else return position + 1;
      }
    }
    throw unterminated(char === "'" ? 'a string' : 'a quoted name');
  }
  if (char === '$' && !/[\w$]/.test(script[index - 1] ?? '')) {
    const tag = /^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$/.exec(script.slice(index))?.[0];
    if (!tag) return index;
    const end = script.indexOf(tag, index + tag.length);
    if (end < 0) throw unterminated(`a ${tag} quoted string`);
    return end + tag.length;
  }
  return index;
}
