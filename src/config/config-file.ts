/**
 * Reads a walship/WAL-G configuration file: a flat map from setting names
 * (the same names as the environment variables) to values, as JSON or as
 * the flat subset of YAML ("KEY: value" lines) that such files use. WAL-G's
 * section settings (WALG_FAILOVER_STORAGES and its indented lines) are kept
 * as text, so that walship can refuse or ignore them by name.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { SECTION_SETTINGS } from './walg-settings.ts';

/** `namedBy` says where the path came from, for the advice when it cannot be read. */
export function readConfigFile(path: string, namedBy = '--config / WALG_CONFIG_PATH'): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read config file ${path} (${code ?? String(error)}): check ${namedBy}`);
  }
  const looksLikeJson = path.endsWith('.json') || text.trimStart().startsWith('{');
  return looksLikeJson ? parseJsonConfig(text, path) : parseFlatYaml(text, path);
}

export function parseJsonConfig(text: string, path: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Only where: the parser's message may quote the text around the mistake, a key's or a password's.
    const where = /\(line \d+ column \d+\)/.exec((error as Error).message)?.[0];
    throw new ConfigError(`config file ${path} is not valid JSON${where ? ` ${where.slice(1, -1).replace('line', 'at line')}` : ''}: check its quotes, commas and braces`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold one JSON object of "SETTING": value pairs`);
  }
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(parsed)) {
    values.set(key, isSection(key) && typeof value === 'object' && value !== null ? JSON.stringify(value) : scalarToString(value, key, path));
  }
  return values;
}

export function parseFlatYaml(text: string, path: string): Map<string, string> {
  const values = new Map<string, string>();
  // A WAL-G section setting (WALG_FAILOVER_STORAGES:) whose indented lines follow; kept as text.
  let section: string | undefined;
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = stripComment(rawLine).trimEnd();
    if (section && (line === '' || /^\s/.test(line))) {
      if (line.trim() !== '') values.set(section, `${values.get(section)}${line.trim()}\n`);
      return;
    }
    section = undefined;
    if (line.trim() === '' || line === '---') return;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*))?$/.exec(line);
    if (!match) {
      throw new ConfigError(`config file ${path} line ${index + 1}: expected "SETTING: value"`);
    }
    const key = match[1]!;
    const value = (match[2] ?? '').trim();
    if (value === '' && isSection(key)) section = key;
    values.set(key, section ? '' : unquote(value, path, index + 1));
  });
  return values;
}

function isSection(key: string): boolean {
  return SECTION_SETTINGS.has(key.toUpperCase());
}

function stripComment(line: string): string {
  // A '#' starts a comment only outside quotes and after white space (YAML's rule).
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function unquote(value: string, path: string, lineNumber: number): string {
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
    return value.slice(1, -1).replaceAll("''", "'");
  }
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    try {
      return JSON.parse(value) as string;
    } catch {
      throw new ConfigError(`config file ${path} line ${lineNumber}: invalid double-quoted string`);
    }
  }
  if (/^[[{|>&*!]/.test(value)) {
    throw new ConfigError(`config file ${path} line ${lineNumber}: only plain "SETTING: value" pairs are supported`);
  }
  return value;
}

function scalarToString(value: unknown, key: string, path: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new ConfigError(`config file ${path}: ${key} must be a string, number or boolean`);
}
