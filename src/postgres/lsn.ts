/**
 * Log sequence numbers and WAL segment arithmetic. An LSN is a 64-bit byte
 * position in the WAL stream, written by PostgreSQL as two 32-bit hex halves
 * ("16/B374D848").
 */
import { WalshipError } from '../errors.ts';

export const MIN_SEGMENT_SIZE = 1 << 20;
export const MAX_SEGMENT_SIZE = 1 << 30;
const XLOG_ID_SPAN = 0x1_0000_0000n;

export function isValidSegmentSize(bytes: number): boolean {
  return Number.isInteger(bytes) && bytes >= MIN_SEGMENT_SIZE && bytes <= MAX_SEGMENT_SIZE && (bytes & (bytes - 1)) === 0;
}

function assertSegmentSize(bytes: number): void {
  if (!isValidSegmentSize(bytes)) {
    throw new WalshipError(`invalid WAL segment size ${bytes}: expected a power of two from 1 MiB to 1 GiB`);
  }
}

export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!match) throw new WalshipError(`invalid LSN "${text}": expected two hex numbers such as 16/B374D848`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** How many segments make up one "xlog id" (the middle 8 hex digits of a name). */
export function segmentsPerXLogId(segmentSize: number): bigint {
  assertSegmentSize(segmentSize);
  return XLOG_ID_SPAN / BigInt(segmentSize);
}

/** The number of the segment that holds the given LSN. */
export function segmentNumberOfLsn(lsn: bigint, segmentSize: number): bigint {
  assertSegmentSize(segmentSize);
  return lsn / BigInt(segmentSize);
}

/** The first LSN stored in a segment. */
export function segmentStartLsn(segmentNumber: bigint, segmentSize: number): bigint {
  assertSegmentSize(segmentSize);
  return segmentNumber * BigInt(segmentSize);
}
