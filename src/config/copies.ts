/**
 * Copies: further storages that hold the same archive (WALSHIP_COPIES, a
 * comma- or colon-separated list of config files). Each file names one
 * storage with the usual WAL-G keys (its own prefix, backend, credentials) and
 * is read on its own: the environment applies to the main storage only, so
 * its WALG_FILE_PREFIX never leaks into a copy's settings.
 */
import { isAbsolute } from 'node:path';
import { ConfigError } from '../errors.ts';
import { Config } from './config.ts';
import { readConfigFile } from './config-file.ts';
import { refuseUnhonouredSettings } from './walg-settings.ts';

export const COPIES_SETTING = 'WALSHIP_COPIES';

/** The config files WALSHIP_COPIES names, in order; none when it is unset. Reads no file. */
export function readCopyPaths(config: Config): string[] {
  const value = config.get(COPIES_SETTING);
  if (value === undefined) return [];
  const paths = value.split(/[,:]/).map((path) => path.trim()).filter((path) => path !== '');
  for (const path of paths) {
    if (!isAbsolute(path)) throw new ConfigError(`${config.origin(COPIES_SETTING)} names "${path}": expected absolute paths of config files, separated by commas or colons`);
  }
  if (new Set(paths).size !== paths.length) throw new ConfigError(`${config.origin(COPIES_SETTING)} names a config file twice: name each copy once`);
  return paths;
}

/**
 * The settings of the storage a config file names (a copy, or copy's --from
 * and --to), from that file alone; `namedBy` says where the path came from.
 */
export function storageConfigFile(path: string, namedBy = COPIES_SETTING): Config {
  const config = new Config({}, readConfigFile(path, namedBy), path);
  refuseUnhonouredSettings(config);
  return config;
}

/** WAL files a copy's queue holds at most while the copy cannot keep up; older ones are left to walship copy. */
export function readCopyBacklogLimit(config: Config): number {
  return config.integer('WALSHIP_COPY_BACKLOG', { min: 1, max: 1_000_000, fallback: 4096 });
}
