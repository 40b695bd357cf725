/**
 * Configuration uses WAL-G's names. Values come from an optional config file
 * (--config or WALG_CONFIG_PATH) and the environment, which wins.
 * Every reader validates its value and fails with one line naming the setting.
 */
import { isAbsolute } from 'node:path';
import { ConfigError } from '../errors.ts';
import { readConfigFile } from './config-file.ts';

/** Settings whose values must never appear in output. */
const SECRET_PATTERN = /(SECRET|PASSWORD|TOKEN|_KEY$|ACCESS_KEY|CONNECTION_STRING|PGP)/;

export function isSecretSetting(name: string): boolean {
  return SECRET_PATTERN.test(name);
}

export class Config {
  readonly filePath: string | undefined;
  private readonly fileValues: Map<string, string>;
  private readonly env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv, fileValues = new Map<string, string>(), filePath?: string) {
    this.env = env;
    this.fileValues = fileValues;
    this.filePath = filePath;
  }

  /** This configuration with `overrides` set as if in the environment. */
  with(overrides: Record<string, string>): Config {
    return new Config({ ...this.env, ...overrides }, this.fileValues, this.filePath);
  }

  /** The raw value, environment first; empty strings count as unset. */
  get(name: string): string | undefined {
    const fromEnv = this.env[name];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const fromFile = this.fileValues.get(name);
    return fromFile === '' ? undefined : fromFile;
  }

  /**
   * Every name set in the environment or the file, empty or not, without
   * reading a value: each read of process.env is a call into the runtime.
   */
  givenNames(): Set<string> {
    const names = new Set(this.fileValues.keys());
    for (const name of Object.keys(this.env)) names.add(name);
    return names;
  }

  /** Names every setting that has a value, for tools that pass configuration on. */
  names(): string[] {
    const names = new Set(this.fileValues.keys());
    for (const [name, value] of Object.entries(this.env)) if (value) names.add(name);
    return [...names].filter((name) => this.get(name) !== undefined);
  }

  /** "WALG_X" plus where its value came from, for error messages. */
  origin(name: string): string {
    const fromEnv = this.env[name];
    if ((fromEnv === undefined || fromEnv === '') && this.fileValues.has(name) && this.filePath) {
      return `${name} (in ${this.filePath})`;
    }
    return name;
  }

  /** The value as it may be quoted in a message: secrets are never shown. */
  shown(name: string): string {
    return isSecretSetting(name) ? '(hidden)' : JSON.stringify(this.get(name));
  }

  invalid(name: string, expected: string): ConfigError {
    return new ConfigError(`${this.origin(name)}=${this.shown(name)} is invalid: expected ${expected}`);
  }

  enumOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.get(name);
    if (value === undefined) return fallback;
    const match = allowed.find((option) => option === value.toLowerCase());
    if (!match) throw this.invalid(name, `one of ${allowed.join(', ')}`);
    return match;
  }

  integer(name: string, range: { min: number; max: number; fallback: number }): number {
    const value = this.get(name);
    if (value === undefined) return range.fallback;
    const parsed = /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(parsed) || parsed < range.min || parsed > range.max) {
      throw this.invalid(name, `a whole number from ${range.min} to ${range.max}`);
    }
    return parsed;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.get(name);
    if (value === undefined) return fallback;
    const normalized = value.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(normalized)) return true;
    if (['false', '0', 'no', 'off'].includes(normalized)) return false;
    throw this.invalid(name, 'true or false');
  }

  absolutePath(name: string): string | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    if (!isAbsolute(value)) throw this.invalid(name, 'an absolute path');
    return value;
  }
}

/** Loads the config file named by --config or WALG_CONFIG_PATH, if any. */
export function loadConfig(options: { configPath?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = options.env ?? process.env;
  const path = options.configPath ?? (env.WALG_CONFIG_PATH || undefined);
  if (path === undefined) return new Config(env);
  return new Config(env, readConfigFile(path), path);
}
