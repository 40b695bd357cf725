/**
 * walship's per-cluster working area: records of look-ahead uploads, the
 * prefetch area, and a restored cluster's recovery settings (which hold
 * storage credentials). It sits next to the data directory, never inside it,
 * so pg_basebackup and pg_rewind never copy it or race with it (WAL-G's
 * pg_wal/.wal-g breaks pg_rewind). Where that place cannot be created (a data
 * directory in a root-owned parent), the spool is in the user's state
 * directory instead. WALSHIP_SPOOL_DIR moves it.
 */
import { constants, existsSync, readdirSync } from 'node:fs';
import { access, lstat, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Config } from '../config/config.ts';
import { WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { makeDirectories } from '../fs/directories.ts';
import { crc32Hex } from '../util/crc32.ts';

/** A cluster's spool, before it is created: WALSHIP_SPOOL_DIR, or the places the rule tries. */
export interface SpoolDirectory {
  dataDirectory: string;
  configured: string | undefined;
}

export function spoolDirectory(config: Config, dataDirectory: string): SpoolDirectory {
  return spoolOf(dataDirectory, readSpoolSetting(config));
}

/** WALSHIP_SPOOL_DIR, when set. */
export function readSpoolSetting(config: Config): string | undefined {
  return config.absolutePath('WALSHIP_SPOOL_DIR');
}

/** WALSHIP_PREFETCH_DIR, when set: the prefetch root, instead of the spool's prefetch/. */
export function readPrefetchSetting(config: Config): string | undefined {
  return config.absolutePath('WALSHIP_PREFETCH_DIR');
}

export function spoolOf(dataDirectory: string, configured: string | undefined): SpoolDirectory {
  return { dataDirectory: resolve(dataDirectory), configured };
}

/** The spool's look-ahead area: one records directory, with its pusher's pid file, per archive under it. */
export const LOOK_AHEAD_AREA = 'archived';
export const PUSHER_PID_FILE = '.pusher.pid';
/** In a records directory: the queues of WAL files on their way to the copies, and their forwarder's pid file. */
export const COPY_QUEUES = 'copies';
export const FORWARDER_PID_FILE = '.forwarder.pid';
/** The spool's prefetch root: one directory per archive, one per recovery under it (see wal/prefetch.ts), each with its prefetcher's pid file. */
export const PREFETCH_AREA = 'prefetch';
export const PREFETCHER_PID_FILE = '.prefetcher.pid';

/** The records directory of one archive, named by a hash of its identity, so switching archives never mixes them up. */
export function lookAheadArea(archive: string): string {
  return `${LOOK_AHEAD_AREA}/${crc32(archive).toString(16)}`;
}

/** The pid files of walship's background processes working for the cluster that owns `spool` (those present now). */
export function helperPidFiles(spool: string): string[] {
  const lookAhead = join(spool, LOOK_AHEAD_AREA);
  const archives = existsSync(lookAhead) ? readdirSync(lookAhead) : [];
  const helpers = archives.flatMap((archive) => [PUSHER_PID_FILE, FORWARDER_PID_FILE].map((file) => join(lookAhead, archive, file)));
  const prefetchers = subdirectories(join(spool, PREFETCH_AREA))
    .flatMap((archive) => subdirectories(archive))
    .map((recovery) => join(recovery, PREFETCHER_PID_FILE));
  // One of the single-area layout, where prefetch/ was the area, may still run.
  const singleArea = join(spool, PREFETCH_AREA, PREFETCHER_PID_FILE);
  return [...prefetchers, singleArea, ...helpers].filter((path) => existsSync(path));
}

/** The directories directly inside `directory` (none when it is missing). */
export function subdirectories(directory: string): string[] {
  if (!existsSync(directory)) return [];
  return readdirSync(directory, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(directory, entry.name));
}

/** Whether `path` is `directory` or inside it. */
export function isInsideDirectory(path: string, directory: string): boolean {
  const within = relative(directory, path);
  return within === '' || (within.split(sep)[0] !== '..' && !isAbsolute(within));
}

/** `<parent of PGDATA>/.walship-<name of PGDATA>`. */
export function spoolNextTo(dataDirectory: string): string {
  return join(dirname(dataDirectory), `.walship-${basename(dataDirectory)}`);
}

/** `<state home>/walship/<name of PGDATA>-<hash of its path>`: one per data directory, the same in every run. */
export function spoolInStateHome(dataDirectory: string, stateHome: string): string {
  return join(stateHome, 'walship', dataDirectoryKey(dataDirectory));
}

function dataDirectoryKey(dataDirectory: string): string {
  return `${basename(dataDirectory)}-${crc32Hex(crc32(dataDirectory))}`;
}

/**
 * `/var/tmp/walship-<uid>/<name of PGDATA>-<hash of its path>`: the prefetch
 * area's last resort. /var/tmp is on disk and kept across reboots (unlike
 * /tmp, often memory), and every user may create a directory there.
 */
export function spoolInVarTmp(dataDirectory: string, uid: number): string {
  return join(VAR_TMP, `walship-${uid}`, dataDirectoryKey(dataDirectory));
}

const VAR_TMP = '/var/tmp';

/**
 * $XDG_STATE_HOME, else ~/.local/state with ~ from the user's passwd entry:
 * systemd, su and runuser set $HOME from it, but sudo -E, su -p or setpriv
 * keep the caller's, such as /root, which the PostgreSQL user cannot write.
 */
export function stateHome(env: NodeJS.ProcessEnv, passwdHome: string | undefined): string | undefined {
  if (env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME)) return env.XDG_STATE_HOME;
  const home = passwdHome || env.HOME;
  return home && isAbsolute(home) ? join(home, '.local', 'state') : undefined;
}

function passwdHome(): string | undefined {
  try {
    return userInfo().homedir;
  } catch {
    return undefined; // no passwd entry, as for an arbitrary uid in a container
  }
}

/** Where a spool may go, in the order tried: WALSHIP_SPOOL_DIR alone, else next to the data directory, then the state home. */
function spoolPlaces(spool: SpoolDirectory): (() => string | undefined)[] {
  const { configured, dataDirectory } = spool;
  if (configured) return [() => configured];
  return [
    () => spoolNextTo(dataDirectory),
    // Looked up only when needed: the passwd lookup may be slow (NSS, LDAP).
    () => {
      const home = stateHome(process.env, passwdHome());
      return home && spoolInStateHome(dataDirectory, home);
    },
  ];
}

/**
 * Creates (if needed) `subdirectory` of the spool, mode 0700, where this user
 * can write it: next to the data directory, or else in the state directory.
 * Throws a WalshipError naming each place tried and why it failed.
 */
export async function createSpoolDirectory(spool: SpoolDirectory, subdirectory = ''): Promise<string> {
  return createFirstPossible(spoolPlaces(spool), subdirectory, 'set WALSHIP_SPOOL_DIR to a directory the PostgreSQL OS user can write, outside the data directory');
}

/**
 * The prefetch root for a data directory: WALSHIP_PREFETCH_DIR when set, else
 * the spool's prefetch/, else a per-user directory under /var/tmp; of those a
 * place on the file system of pg_wal first, so that serving a prefetched
 * segment is a rename (and the restore_command fast path's hard link works).
 */
export async function createPrefetchRoot(spool: SpoolDirectory, configured: string | undefined): Promise<string> {
  const hint = 'set WALSHIP_PREFETCH_DIR to a directory the PostgreSQL OS user can write, outside the data directory';
  if (configured) return createFirstPossible([() => configured], '', hint);
  const uid = process.getuid?.();
  const places = spoolPlaces(spool).map((place) => () => {
    const path = place();
    return path && join(path, PREFETCH_AREA);
  });
  if (!spool.configured && uid !== undefined) places.push(() => spoolInVarTmp(spool.dataDirectory, uid));
  const walDevice = await deviceOf(join(spool.dataDirectory, 'pg_wal'));
  // Places on pg_wal's file system first; the others are resolved (a passwd lookup) only when the first does not do.
  const failedHere: string[] = [];
  const elsewhere: string[] = [];
  for (const place of places) {
    const path = place();
    if (path === undefined) continue;
    if (walDevice === undefined || (await deviceOf(path)) !== walDevice) elsewhere.push(path);
    else if (await createIfPossible(path)) return path;
    else failedHere.push(path);
  }
  // Tried again to say why each failed, if no place elsewhere does.
  return createFirstPossible([...elsewhere, ...failedHere].map((path) => () => path), '', hint);
}

async function createIfPossible(directory: string): Promise<boolean> {
  try {
    await createDirectoryForUser(directory);
    return true;
  } catch {
    return false;
  }
}

/** The device of `path`, or of the nearest level above it that exists. */
async function deviceOf(path: string): Promise<number | undefined> {
  for (let level = resolve(path); ; level = dirname(level)) {
    try {
      return (await stat(level)).dev;
    } catch {
      if (dirname(level) === level) return undefined;
    }
  }
}

async function createFirstPossible(places: (() => string | undefined)[], subdirectory: string, hint: string): Promise<string> {
  const failures: string[] = [];
  for (const place of places) {
    const path = place();
    if (!path) continue;
    const directory = join(path, subdirectory);
    try {
      await createDirectoryForUser(directory);
      return directory;
    } catch (error) {
      failures.push(`${directory} (${(error as NodeJS.ErrnoException).code ?? error})`);
    }
  }
  throw new WalshipError(`the spool directory is unavailable: cannot create ${failures.join(' or ')}; ${hint}`);
}

/** Makes `directory` (mode 0700) unless it exists, and checks that this user may use it. */
async function createDirectoryForUser(directory: string): Promise<void> {
  await makeDirectories(directory, 0o700);
  // mkdir succeeds on a directory that exists, even one this user cannot write (left by a run as root).
  await access(directory, constants.W_OK | constants.X_OK);
  await requireOwnDirectoryInVarTmp(directory);
}

/**
 * /var/tmp is writable by everyone: a walship-<uid> directory there counts
 * only if this user owns it, it is no symlink, and nobody else may write it.
 * Otherwise another user could plant "prefetched" WAL in it.
 */
async function requireOwnDirectoryInVarTmp(directory: string): Promise<void> {
  if (dirname(dirname(directory)) !== VAR_TMP || !basename(dirname(directory)).startsWith('walship-')) return;
  const own = await lstat(dirname(directory));
  if (!own.isDirectory() || own.uid !== process.getuid?.() || (own.mode & 0o022) !== 0) {
    throw Object.assign(new Error('not a private directory of this user'), { code: 'EPERM' });
  }
}

/** createSpoolDirectory for a feature that only speeds things up: undefined, and one info line, when the spool is unavailable. */
export async function spoolSubdirectory(spool: SpoolDirectory, name: string): Promise<string | undefined> {
  try {
    return await createSpoolDirectory(spool, name);
  } catch (error) {
    if (!(error instanceof WalshipError)) throw error;
    log.info(`${error.message}; carrying on without ${name}`);
    return undefined;
  }
}
