/**
 * backup_label, the first member of every base backup:
 *   START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
 *   CHECKPOINT LOCATION: 0/2000060
 *   BACKUP METHOD: streamed
 *   BACKUP FROM: primary
 *   START TIME: 2024-05-01 10:00:00 UTC
 *   LABEL: walship backup-push
 *   START TIMELINE: 1
 */
import { WalshipError } from '../errors.ts';
import { parseLsn } from './lsn.ts';

export interface BackupLabel {
  startLsn: bigint;
  /** The WAL segment holding the start LSN: backups are named after it. */
  startSegment: string;
  checkpointLsn: bigint;
  timeline: number;
  /** As the server wrote it, in its own time zone. */
  startTime: string;
  label: string;
}

export function parseBackupLabel(text: string): BackupLabel {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
  }
  const require = (name: string): string => {
    const value = fields.get(name);
    if (value === undefined) throw new WalshipError(`backup_label has no "${name}" line: is this a PostgreSQL base backup?`);
    return value;
  };
  const start = /^([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/i.exec(require('START WAL LOCATION'));
  if (!start) throw new WalshipError(`backup_label has an unreadable START WAL LOCATION: ${fields.get('START WAL LOCATION')}`);
  const timeline = Number(fields.get('START TIMELINE') ?? parseInt(start[2]!.slice(0, 8), 16));
  return {
    startLsn: parseLsn(start[1]!),
    startSegment: start[2]!.toUpperCase(),
    checkpointLsn: parseLsn(require('CHECKPOINT LOCATION')),
    timeline,
    startTime: fields.get('START TIME') ?? '',
    label: fields.get('LABEL') ?? '',
  };
}
