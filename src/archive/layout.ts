/**
 * Every object key under the storage prefix: WAL-G's layout and walship's own
 * records beside it. No other module builds or parses a key.
 *
 *   wal_005/<WAL file name>[.<extension>]                  WAL (segments, history, .partial, .backup)
 *   basebackups_005/<backup>_backup_stop_sentinel.json     a backup's commit point, written last
 *   basebackups_005/<backup>/metadata.json
 *   basebackups_005/<backup>/tar_partitions/part_001.tar[.<extension>]
 *   walship/archive.json                                   walship's records: the archive's identity,
 *   walship/deleting/<backup>.json                         the backups a delete has begun to remove,
 *   walship/drills/<time>_<backup>.json                    and restore drill reports, named to sort by time
 */
import { parseWalFileName, type WalFileName } from '../postgres/wal-name.ts';

const WAL_FOLDER = 'wal_005';
const BACKUP_FOLDER = 'basebackups_005';
/** walship's own records about the archive, outside WAL-G's folders. */
const WALSHIP_FOLDER = 'walship';

export const WAL_PREFIX = `${WAL_FOLDER}/`;
export const BACKUP_PREFIX = `${BACKUP_FOLDER}/`;
/** walship's own records: the archive's identity, deletions begun, drill reports. */
export const WALSHIP_PREFIX = `${WALSHIP_FOLDER}/`;
/** Which cluster the archive belongs to (identity.ts). */
export const ARCHIVE_IDENTITY_KEY = `${WALSHIP_FOLDER}/archive.json`;
/** Records of backups `delete` has begun to remove: written before the sentinel goes, removed once the folder is gone. */
const DELETING_FOLDER = 'deleting';
/** Restore drill reports (drills.ts). */
export const DRILL_REPORT_PREFIX = `${WALSHIP_FOLDER}/drills/`;
const DRILL_REPORT = /^(\d{8})T(\d{6})(\.\d{3})Z_(base_[0-9A-F]{24})\.json$/;

const SENTINEL_SUFFIX = '_backup_stop_sentinel.json';
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

/** The record that `delete` has begun to remove `backup`, so its folder goes even when it is young. */
export function deletionRecordKey(backup: string): string {
  return `${WALSHIP_FOLDER}/${DELETING_FOLDER}/${backup}.json`;
}

/** The backup a walship record (a path under walship/) says a delete has begun to remove, if it is such a record. */
export function backupOfDeletionRecord(path: string): string | undefined {
  const name = path.startsWith(`${DELETING_FOLDER}/`) && path.endsWith('.json') ? path.slice(DELETING_FOLDER.length + 1, -'.json'.length) : '';
  return isBackupName(name) ? name : undefined;
}

export function partKey(backup: string, part: string): string {
  return `${backupPrefix(backup)}tar_partitions/${part}`;
}

/** part_001.tar.zst, part_002.tar.zst, ...: names sort in archive order. */
export function partName(index: number, stored: Extension): string {
  return withExtension(`part_${String(index).padStart(3, '0')}.tar`, stored);
}

/** The compression extension of a part name: 'zst' for part_001.tar.zst, '' for part_001.tar. */
export function partExtension(part: string): string {
  return PART_EXTENSION.exec(part)?.[1] ?? '';
}

/** walship/drills/20261201T205813.589Z_base_000000010000000000000004.json: the time (UTC, to the millisecond) first, so names sort by time. */
export function drillReportKey(backup: string, time: Date): string {
  return `${DRILL_REPORT_PREFIX}${time.toISOString().replace(/[-:]/g, '')}_${backup}.json`;
}

/** The backup and time a drill report's key names; undefined for any other key. */
export function parseDrillReportKey(key: string): { backup: string; time: Date } | undefined {
  const match = key.startsWith(DRILL_REPORT_PREFIX) ? DRILL_REPORT.exec(key.slice(DRILL_REPORT_PREFIX.length)) : null;
  if (!match) return undefined;
  const [, day, clock, fraction, backup] = match;
  const time = new Date(`${day!.slice(0, 4)}-${day!.slice(4, 6)}-${day!.slice(6)}T${clock!.slice(0, 2)}:${clock!.slice(2, 4)}:${clock!.slice(4)}${fraction}Z`);
  return Number.isNaN(time.getTime()) ? undefined : { backup: backup!, time };
}

export type KeyKind =
  | { kind: 'wal'; file: WalFileName; extension: string }
  | { kind: 'sentinel'; backup: string }
  | { kind: 'backup-object'; backup: string; path: string }
  | { kind: 'walship'; path: string }
  | { kind: 'other' };

const OTHER: KeyKind = { kind: 'other' };

/** What a stored key is, from its name alone. */
export function classifyKey(key: string): KeyKind {
  if (key.startsWith(WAL_PREFIX)) return classifyWal(key.slice(WAL_PREFIX.length));
  if (key.startsWith(BACKUP_PREFIX)) return classifyBackup(key.slice(BACKUP_PREFIX.length));
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
