/**
 * WAL file names as archive_command and restore_command see them (%f):
 *   segment  TTTTTTTTXXXXXXXXYYYYYYYY       timeline, xlog id, segment in id
 *   history  TTTTTTTT.history
 *   backup   <segment>.<8 hex offset>.backup
 *   partial  <segment>.partial
 */
import { WalshipError } from '../errors.ts';
import { segmentsPerXLogId } from './lsn.ts';

export type WalFileKind = 'segment' | 'history' | 'backup' | 'partial';

export interface WalFileName {
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** The 24-hex segment the file belongs to; absent for history files. */
  segment?: string;
}

const HEX8 = '[0-9A-F]{8}';
const patterns: [WalFileKind, RegExp][] = [
  ['segment', new RegExp(`^(${HEX8})${HEX8}${HEX8}$`)],
  ['history', new RegExp(`^(${HEX8})\\.history$`)],
  ['backup', new RegExp(`^((${HEX8})${HEX8}${HEX8})\\.${HEX8}\\.backup$`)],
  ['partial', new RegExp(`^((${HEX8})${HEX8}${HEX8})\\.partial$`)],
];

/** Classifies a WAL file name, or returns undefined when it is not one. */
export function parseWalFileName(name: string): WalFileName | undefined {
  for (const [kind, pattern] of patterns) {
    const match = pattern.exec(name);
    if (!match) continue;
    if (kind === 'segment') return { name, kind, timeline: parseInt(match[1]!, 16), segment: name };
    if (kind === 'history') return { name, kind, timeline: parseInt(match[1]!, 16) };
    return { name, kind, timeline: parseInt(match[2]!, 16), segment: match[1]! };
  }
  return undefined;
}

/** Like parseWalFileName, but a name that is not a WAL file is a user error. */
export function requireWalFileName(name: string): WalFileName {
  const parsed = parseWalFileName(name);
  if (!parsed) {
    throw new WalshipError(
      `"${name}" is not a WAL file name: expected a 24-hex-digit segment, TTTTTTTT.history, <segment>.partial or <segment>.<offset>.backup`,
    );
  }
  return parsed;
}

function hex8(value: bigint | number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

/** The number of a segment within its timeline, counting from 0. */
export function segmentNumberOfName(segment: string, segmentSize: number): bigint {
  const perId = segmentsPerXLogId(segmentSize);
  const xlogId = BigInt(`0x${segment.slice(8, 16)}`);
  const inId = BigInt(`0x${segment.slice(16, 24)}`);
  if (inId >= perId) {
    throw new WalshipError(`segment ${segment} does not exist with ${segmentSize / 1048576} MiB segments`);
  }
  return xlogId * perId + inId;
}

export function segmentName(timeline: number, segmentNumber: bigint, segmentSize: number): string {
  const perId = segmentsPerXLogId(segmentSize);
  return hex8(timeline) + hex8(segmentNumber / perId) + hex8(segmentNumber % perId);
}

/** The segment that follows `segment` on the same timeline. */
export function nextSegmentName(segment: string, segmentSize: number): string {
  const timeline = parseInt(segment.slice(0, 8), 16);
  return segmentName(timeline, segmentNumberOfName(segment, segmentSize) + 1n, segmentSize);
}
