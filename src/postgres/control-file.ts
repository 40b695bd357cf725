/**
 * global/pg_control, the cluster's control file. Its layout starts the same
 * in every supported version: uint64 system_identifier, then uint32
 * pg_control_version, in the server's byte order (little-endian on the
 * platforms PostgreSQL backups move between in practice).
 */
import { WalshipError } from '../errors.ts';

export interface ControlFileFacts {
  systemIdentifier: string;
  controlVersion: number;
}

export function parseControlFile(content: Buffer): ControlFileFacts {
  if (content.length < 16) throw new WalshipError(`global/pg_control is only ${content.length} bytes: the backup is damaged`);
  const controlVersion = content.readUInt32LE(8);
  // PostgreSQL 9.6 to 18 use versions 960 to 1800.
  if (controlVersion < 900 || controlVersion > 9999) {
    throw new WalshipError(`global/pg_control has an unknown version ${controlVersion}: not a little-endian PostgreSQL control file`);
  }
  return { systemIdentifier: content.readBigUInt64LE(0).toString(), controlVersion };
}

/** pg_controldata's report (run with LC_ALL=C): "field name:   value" lines, by field name. */
export function parseControlData(report: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of report.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * A server in recovery must run with these at least as high as the server
 * that wrote the WAL (PostgreSQL records them in pg_control), or recovery
 * stops: a restored cluster started with another configuration uses them.
 */
const RECOVERY_MINIMUMS = [
  ['max_connections', 'max_connections setting'],
  ['max_worker_processes', 'max_worker_processes setting'],
  ['max_wal_senders', 'max_wal_senders setting'],
  ['max_prepared_transactions', 'max_prepared_xacts setting'],
  ['max_locks_per_transaction', 'max_locks_per_xact setting'],
] as const;

export function recoveryMinimumSettings(controlData: Map<string, string>): Record<string, number> {
  const settings: Record<string, number> = {};
  for (const [setting, field] of RECOVERY_MINIMUMS) {
    const value = Number(controlData.get(field));
    if (!Number.isSafeInteger(value) || value < 0) throw new WalshipError(`pg_controldata does not show "${field}": not a PostgreSQL 13 or later control file`);
    settings[setting] = value;
  }
  return settings;
}

/** Whether the cluster writes data page checksums, which a full read then verifies. */
export function hasDataChecksums(controlData: Map<string, string>): boolean {
  return (controlData.get('Data page checksum version') ?? '0') !== '0';
}
