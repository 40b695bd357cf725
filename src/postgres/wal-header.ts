/**
 * The long page header at the start of every WAL segment (and .partial file),
 * XLogLongPageHeaderData in PostgreSQL's src/include/access/xlog_internal.h,
 * laid out the same in 13 to 18:
 *
 *   offset size  field
 *        0    2  xlp_magic        XLOG_PAGE_MAGIC: one value per major version
 *        2    2  xlp_info         flags; XLP_LONG_HEADER on a segment's first page
 *        4    4  xlp_tli          timeline of the page's first record
 *        8    8  xlp_pageaddr     the page's LSN
 *       16    4  xlp_rem_len      (then 4 bytes of padding to MAXALIGN)
 *       24    8  xlp_sysid        the cluster's system identifier, from pg_control
 *       32    4  xlp_seg_size     wal_segment_size
 *       36    4  xlp_xlog_blcksz  XLOG_BLCKSZ
 *
 * in the server's byte order, read as little-endian like pg_control
 * (control-file.ts). History and .backup files are text, with no header.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { WalshipError } from '../errors.ts';

/** SizeOfXLogLongPHD. */
export const WAL_LONG_HEADER_SIZE = 40;

/** XLOG_PAGE_MAGIC of each major version walship reads. */
const PAGE_MAGIC_VERSIONS = new Map([
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
  [0xd118, 18],
]);
/**
 * Each major version raises the magic. A newer one than walship knows keeps
 * the layout (unchanged since 9.x): refusing it would stop archiving on the
 * day of a major upgrade.
 */
const NEWEST_KNOWN_MAGIC = 0xd118;
const HIGHEST_PLAUSIBLE_MAGIC = 0xd1ff;
const XLP_LONG_HEADER = 0x0002;
/** XLP_ALL_FLAGS in 13 to 18 (13 since 13.5, which added XLP_FIRST_IS_OVERWRITE_CONTRECORD). */
const XLP_ALL_FLAGS = 0x000f;

export interface WalLongPageHeader {
  /** The major version whose XLOG_PAGE_MAGIC the page carries; undefined for a version newer than walship knows. */
  postgresVersion: number | undefined;
  /** A 64-bit number, as a decimal string (as backup sentinels keep it). */
  systemIdentifier: string;
  segmentSize: number;
}

const isPowerOfTwo = (value: number) => value > 0 && (value & (value - 1)) === 0;

/** Reads the long page header from the start of a WAL file's content; `file` names it in errors. */
export function parseWalLongPageHeader(content: Buffer, file: string): WalLongPageHeader {
  const refuse = (reason: string) => new WalshipError(`${file} is not a WAL file of PostgreSQL 13 or later: ${reason}`);
  if (content.length < WAL_LONG_HEADER_SIZE) throw refuse(`it is ${content.length} bytes long, shorter than a WAL page header`);
  const magic = content.readUInt16LE(0);
  const postgresVersion = PAGE_MAGIC_VERSIONS.get(magic);
  const newerVersion = magic > NEWEST_KNOWN_MAGIC && magic <= HIGHEST_PLAUSIBLE_MAGIC;
  if (postgresVersion === undefined && !newerVersion) {
    const bigEndian = PAGE_MAGIC_VERSIONS.has(content.readUInt16BE(0)) ? ' (a big-endian server wrote it: walship reads little-endian WAL only)' : '';
    throw refuse(`its page magic is 0x${magic.toString(16).padStart(4, '0')}${bigEndian}`);
  }
  const info = content.readUInt16LE(2);
  if (!newerVersion && (info & ~XLP_ALL_FLAGS) !== 0) throw refuse(`its first page has unknown flags 0x${info.toString(16).padStart(4, '0')}`);
  if ((info & XLP_LONG_HEADER) === 0) throw refuse('its first page has no long header, so it does not start a segment');
  const segmentSize = content.readUInt32LE(32);
  const blockSize = content.readUInt32LE(36);
  if (!isPowerOfTwo(segmentSize) || segmentSize < 1 << 20 || segmentSize > 1 << 30) throw refuse(`its header gives a segment size of ${segmentSize} bytes`);
  if (!isPowerOfTwo(blockSize) || blockSize < 1 << 10 || blockSize > 1 << 16) throw refuse(`its header gives a WAL block size of ${blockSize} bytes`);
  return { postgresVersion, systemIdentifier: content.readBigUInt64LE(24).toString(), segmentSize };
}

/** The long page header of the WAL file at `path`. */
export function readWalLongPageHeader(path: string): WalLongPageHeader {
  const header = Buffer.alloc(WAL_LONG_HEADER_SIZE);
  let length: number;
  try {
    const fd = openSync(path, 'r');
    try {
      length = readSync(fd, header, 0, WAL_LONG_HEADER_SIZE, 0);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new WalshipError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseWalLongPageHeader(header.subarray(0, length), path);
}
