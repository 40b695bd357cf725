/**
 * Every object key under the storage prefix: WAL-G's layout and walship's own
 * records beside it. No other module builds or parses a key.
 *
 *   wal_005/<WAL file name>[.<extension>]                  WAL (segments, history, .partial, .backup)
 *   basebackups_005/<backup>_backup_stop_sentinel.json     a backup's commit point, written last
 *   basebackups_005/<backup>/metadata.json
 *   basebackups_005/<backup>/tar_partitions/part_001.tar[.<extension>]
 *   basebackups_005/<backup>/tar_partitions/pg_control.tar[.<extension>]   global/pg_control alone, uploaded last
 *   basebackups_005/<backup>/tar_partitions/backup_label.tar[.<extension>] WAL-G's: backup_label and tablespace_map
 *   basebackups_005/<backup>/files_metadata.json           WAL-G's: the files a backup holds
 *   dumps_005/<dump>_dump_sentinel.json                    a dump set's commit point, written last
 *   dumps_005/<dump>/globals.sql[.<extension>]             pg_dumpall --globals-only
 *   dumps_005/<dump>/databases/<database>.dump[.<extension>]   pg_dump -Fc of one database
 *   walship/archive.json                                   walship's records: the archive's identity,
 *   walship/deleting/<backup or dump>.json                 the backups and dump sets a delete has begun to remove,
 *   walship/drills/<time>_<backup or dump>.json            restore drill reports, named to sort by time,
 *   walship/attempts/<job>/<time>_<id>_<phase>.json        and the attempts of cron's jobs (backup-push, delete,
 *                                                          drill, dump-push, copy), named by their start time
 */
import { parseWalFileName, type WalFileName } from '../postgres/wal-name.ts';

const WAL_FOLDER = 'wal_005';
const BACKUP_FOLDER = 'basebackups_005';
/** walship's logical dumps, beside WAL-G's folders (WAL-G ignores it). */
const DUMP_FOLDER = 'dumps_005';
/** walship's own records about the archive, outside WAL-G's folders. */
const WALSHIP_FOLDER = 'walship';

export const WAL_PREFIX = `${WAL_FOLDER}/`;
export const BACKUP_PREFIX = `${BACKUP_FOLDER}/`;
export const DUMP_PREFIX = `${DUMP_FOLDER}/`;
/** walship's own records: the archive's identity, deletions begun, drill reports. */
export const WALSHIP_PREFIX = `${WALSHIP_FOLDER}/`;
/** Which cluster the archive belongs to (identity.ts). */
export const ARCHIVE_IDENTITY_KEY = `${WALSHIP_FOLDER}/archive.json`;
/** Records of backups `delete` has begun to remove: written before the sentinel goes, removed once the folder is gone. */
const DELETING_FOLDER = 'deleting';
/** Restore drill reports (drills.ts). */
export const DRILL_REPORT_PREFIX = `${WALSHIP_FOLDER}/drills/`;
const DRILL_REPORT = /^(\d{8})T(\d{6})(\.\d{3})Z_(base_[0-9A-F]{24})\.json$/;
const DUMP_DRILL_REPORT = /^(\d{8})T(\d{6})(\.\d{3})Z_(dump_\d{8}T\d{6}Z)\.json$/;
/** The attempts of the jobs cron runs (attempts.ts): one folder per job. */
export const ATTEMPT_PREFIX = `${WALSHIP_FOLDER}/attempts/`;
export const ATTEMPT_PHASES = ['started', 'succeeded', 'failed'] as const;
export type AttemptPhase = (typeof ATTEMPT_PHASES)[number];
const ATTEMPT_RECORD = /^([a-z][a-z-]*)\/(\d{8}T\d{6}\.\d{3}Z)_([0-9a-f]{8})_(started|succeeded|failed)\.json$/;

const SENTINEL_SUFFIX = '_backup_stop_sentinel.json';
const DUMP_SENTINEL_SUFFIX = '_dump_sentinel.json';
const DUMP_NAME = /^dump_\d{8}T\d{6}Z$/;
const BACKUP_NAME = /^base_[0-9A-F]{24}$/;
const PART_EXTENSION = /\.tar\.([a-z0-9]+)$/;
const EXTENSION = /^[a-z0-9]+$/;
const WAL_SUFFIXES = new Set(['history', 'partial', 'backup']);

/** Something stored under an extension; '' for uncompressed objects. A codec is one. */
export interface Extension {
  extension: string;
}

function withExtension(base: string, { extension }: Extension): string {
  return extension ? `${base}.${extension}` : base;
}

/** wal_005/<name>.<extension>. */
export function walKey(name: string, stored: Extension): string {
  return withExtension(`${WAL_PREFIX}${name}`, stored);
}

/** A backup name as walship and WAL-G give it: base_ and the 24-hex start segment. */
export function isBackupName(name: string): boolean {
  return BACKUP_NAME.test(name);
}

export function sentinelKey(backup: string): string {
  return `${BACKUP_PREFIX}${backup}${SENTINEL_SUFFIX}`;
}

export function metadataKey(backup: string): string {
  return `${backupPrefix(backup)}metadata.json`;
}

/** Every object of a backup but its sentinel. */
export function backupPrefix(backup: string): string {
  return `${BACKUP_PREFIX}${backup}/`;
}

/** The record that `delete` has begun to remove a backup or a dump set, so its folder goes even when it is young. */
export function deletionRecordKey(name: string): string {
  return `${WALSHIP_FOLDER}/${DELETING_FOLDER}/${name}.json`;
}

/** The name in a deletion record's path (a path under walship/), if it is such a record. */
function nameOfDeletionRecord(path: string): string {
  return path.startsWith(`${DELETING_FOLDER}/`) && path.endsWith('.json') ? path.slice(DELETING_FOLDER.length + 1, -'.json'.length) : '';
}

/** The backup a walship record (a path under walship/) says a delete has begun to remove, if it is such a record. */
export function backupOfDeletionRecord(path: string): string | undefined {
  const name = nameOfDeletionRecord(path);
  return isBackupName(name) ? name : undefined;
}

/** The dump set a walship record says a delete has begun to remove, if it is such a record. */
export function dumpOfDeletionRecord(path: string): string | undefined {
  const name = nameOfDeletionRecord(path);
  return isDumpName(name) ? name : undefined;
}

export function filesMetadataKey(backup: string): string {
  return `${backupPrefix(backup)}files_metadata.json`;
}

/** A backup's parts; the rest of each key is the part's name. */
export function partsPrefix(backup: string): string {
  return `${backupPrefix(backup)}tar_partitions/`;
}

export function partKey(backup: string, part: string): string {
  return `${partsPrefix(backup)}${part}`;
}

/** part_001.tar.zst, part_002.tar.zst, ...: names sort in archive order. */
export function partName(index: number, stored: Extension): string {
  return withExtension(`part_${String(index).padStart(3, '0')}.tar`, stored);
}

/** pg_control.tar.zst: global/pg_control alone, extracted last (WAL-G's backup-fetch requires it). */
export function controlPartName(stored: Extension): string {
  return withExtension('pg_control.tar', stored);
}

/**
 * What a part holds, from its name, as WAL-G's backup-fetch tells: data
 * (extracted in any order), WAL-G's backup_label.tar (extracted after the
 * data, replacing its backup_label), or pg_control.tar (extracted last).
 */
export function partRole(part: string): 'data' | 'label' | 'control' {
  if (/^.*?pg_control\.tar(\..+$|$)/.test(part)) return 'control';
  if (/^.*?backup_label\.tar(\..+$|$)/.test(part)) return 'label';
  return 'data';
}

/** The compression extension of a part name: 'zst' for part_001.tar.zst, '' for part_001.tar. */
export function partExtension(part: string): string {
  return PART_EXTENSION.exec(part)?.[1] ?? '';
}

/** A dump set's name: dump_ and its start time in UTC to the second, so names sort by time. */
export function dumpNameAt(time: Date): string {
  return `dump_${time.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
}

export function isDumpName(name: string): boolean {
  return DUMP_NAME.test(name);
}

export function dumpSentinelKey(dump: string): string {
  return `${DUMP_PREFIX}${dump}${DUMP_SENTINEL_SUFFIX}`;
}

/** Every object of a dump set but its sentinel. */
export function dumpPrefix(dump: string): string {
  return `${DUMP_PREFIX}${dump}/`;
}

/** A database's name as it goes into a key: bytes outside [A-Za-z0-9_-] percent-encoded, so no name can make an unsafe key. */
function encodeDatabaseName(database: string): string {
  return [...Buffer.from(database, 'utf8')].map((byte) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** The object of one database's dump, relative to the dump set's folder. */
export function dumpDatabaseObject(database: string, stored: Extension): string {
  return withExtension(`databases/${encodeDatabaseName(database)}.dump`, stored);
}

/** The object of the globals (roles, tablespaces), relative to the dump set's folder. */
export function dumpGlobalsObject(stored: Extension): string {
  return withExtension('globals.sql', stored);
}

export function dumpObjectKey(dump: string, object: string): string {
  return `${dumpPrefix(dump)}${object}`;
}

/** The compression extension of a dump object: 'zst' for databases/shop.dump.zst, '' for globals.sql. */
export function dumpObjectExtension(object: string): string {
  return /\.(?:dump|sql)\.([a-z0-9]+)$/.exec(object)?.[1] ?? '';
}

/** walship/drills/20261201T205813.589Z_base_000000010000000000000004.json: the time (UTC, to the millisecond) first, so names sort by time. */
export function drillReportKey(drilled: string, time: Date): string {
  return `${DRILL_REPORT_PREFIX}${compactTime(time)}_${drilled}.json`;
}

/** The backup and time a drill report's key names; undefined for any other key (a dump set's report included). */
export function parseDrillReportKey(key: string): { backup: string; time: Date } | undefined {
  const parsed = parseReportKey(key, DRILL_REPORT);
  return parsed && { backup: parsed.name, time: parsed.time };
}

/** The dump set and time a dump drill report's key (drillReportKey of a dump name) names; undefined for any other key. */
export function parseDumpDrillReportKey(key: string): { dump: string; time: Date } | undefined {
  const parsed = parseReportKey(key, DUMP_DRILL_REPORT);
  return parsed && { dump: parsed.name, time: parsed.time };
}

function parseReportKey(key: string, form: RegExp): { name: string; time: Date } | undefined {
  const match = key.startsWith(DRILL_REPORT_PREFIX) ? form.exec(key.slice(DRILL_REPORT_PREFIX.length)) : null;
  if (!match) return undefined;
  const [, day, clock, fraction, name] = match;
  const time = new Date(`${day!.slice(0, 4)}-${day!.slice(4, 6)}-${day!.slice(6)}T${clock!.slice(0, 2)}:${clock!.slice(2, 4)}:${clock!.slice(4)}${fraction}Z`);
  return Number.isNaN(time.getTime()) ? undefined : { name: name!, time };
}

/** A compact UTC time to the millisecond, 20261201T205813.589Z: names that start with it sort by time. */
function compactTime(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '');
}

function parseCompactTime(text: string): Date {
  return new Date(`${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 11)}:${text.slice(11, 13)}:${text.slice(13)}`);
}

/** One record of a job's attempt: written at its start, and again at its end with the result. */
export interface AttemptKey {
  job: string;
  started: Date;
  /** Tells apart attempts that started in the same millisecond. */
  id: string;
  phase: AttemptPhase;
}

export function attemptFolder(job: string): string {
  return `${ATTEMPT_PREFIX}${job}/`;
}

/** walship/attempts/backup-push/20261201T021500.123Z_5f3a9c01_failed.json. */
export function attemptKey({ job, started, id, phase }: AttemptKey): string {
  return `${attemptFolder(job)}${compactTime(started)}_${id}_${phase}.json`;
}

/** What an attempt record's key names; undefined for any other key. */
export function parseAttemptKey(key: string): AttemptKey | undefined {
  const match = key.startsWith(ATTEMPT_PREFIX) ? ATTEMPT_RECORD.exec(key.slice(ATTEMPT_PREFIX.length)) : null;
  if (!match) return undefined;
  const started = parseCompactTime(match[2]!);
  return Number.isNaN(started.getTime()) ? undefined : { job: match[1]!, started, id: match[3]!, phase: match[4] as AttemptPhase };
}

export type KeyKind =
  | { kind: 'wal'; file: WalFileName; extension: string }
  | { kind: 'sentinel'; backup: string }
  | { kind: 'backup-object'; backup: string; path: string }
  | { kind: 'dump-sentinel'; dump: string }
  | { kind: 'dump-object'; dump: string; path: string }
  | { kind: 'walship'; path: string }
  | { kind: 'other' };

const OTHER: KeyKind = { kind: 'other' };

/** What a stored key is, from its name alone. */
export function classifyKey(key: string): KeyKind {
  if (key.startsWith(WAL_PREFIX)) return classifyWal(key.slice(WAL_PREFIX.length));
  if (key.startsWith(BACKUP_PREFIX)) return classifyBackup(key.slice(BACKUP_PREFIX.length));
  if (key.startsWith(DUMP_PREFIX)) return classifyDump(key.slice(DUMP_PREFIX.length));
  if (key.startsWith(`${WALSHIP_FOLDER}/`) && key.length > WALSHIP_FOLDER.length + 1) return { kind: 'walship', path: key.slice(WALSHIP_FOLDER.length + 1) };
  return OTHER;
}

function classifyWal(file: string): KeyKind {
  // A WAL name may end in a suffix of its own (.history, .partial, .backup): then it has no extension.
  const dot = file.lastIndexOf('.');
  const suffix = dot < 0 ? '' : file.slice(dot + 1);
  const extension = dot < 0 || WAL_SUFFIXES.has(suffix) || !EXTENSION.test(suffix) ? '' : suffix;
  const parsed = parseWalFileName(extension ? file.slice(0, dot) : file);
  return parsed ? { kind: 'wal', file: parsed, extension } : OTHER;
}

function classifyBackup(relative: string): KeyKind {
  const slash = relative.indexOf('/');
  if (slash < 0) {
    const backup = relative.endsWith(SENTINEL_SUFFIX) ? relative.slice(0, -SENTINEL_SUFFIX.length) : '';
    return isBackupName(backup) ? { kind: 'sentinel', backup } : OTHER;
  }
  const backup = relative.slice(0, slash);
  const path = relative.slice(slash + 1);
  return isBackupName(backup) && path ? { kind: 'backup-object', backup, path } : OTHER;
}

function classifyDump(relative: string): KeyKind {
  const slash = relative.indexOf('/');
  if (slash < 0) {
    const dump = relative.endsWith(DUMP_SENTINEL_SUFFIX) ? relative.slice(0, -DUMP_SENTINEL_SUFFIX.length) : '';
    return isDumpName(dump) ? { kind: 'dump-sentinel', dump } : OTHER;
  }
  const dump = relative.slice(0, slash);
  const path = relative.slice(slash + 1);
  return isDumpName(dump) && path ? { kind: 'dump-object', dump, path } : OTHER;
}
