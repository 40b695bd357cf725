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
