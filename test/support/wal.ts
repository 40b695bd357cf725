/**
 * Synthetic WAL for tests that need no server: content that starts with a
 * segment's long page header (PostgreSQL 15's, little-endian), as wal-push
 * checks it.
 */

/** The cluster synthetic segments come from unless a test says otherwise. */
export const TEST_SYSTEM_IDENTIFIER = '7000000000000000001';

export interface HeaderFields {
  magic?: number;
  info?: number;
  systemIdentifier?: string;
  segmentSize?: number;
  blockSize?: number;
}

/** XLogLongPageHeaderData (40 bytes). */
export function walLongPageHeader(fields: HeaderFields = {}): Buffer {
  const header = Buffer.alloc(40);
  header.writeUInt16LE(fields.magic ?? 0xd110, 0);
  header.writeUInt16LE(fields.info ?? 0x0002, 2);
  header.writeUInt32LE(1, 4);
  header.writeBigUInt64LE(BigInt(fields.systemIdentifier ?? TEST_SYSTEM_IDENTIFIER), 24);
  header.writeUInt32LE(fields.segmentSize ?? 16 << 20, 32);
  header.writeUInt32LE(fields.blockSize ?? 8192, 36);
  return header;
}

/** `content` with its first 40 bytes replaced by a segment's long page header. */
export function asWalSegment(content: Buffer, systemIdentifier = TEST_SYSTEM_IDENTIFIER): Buffer {
  const segment = Buffer.from(content);
  walLongPageHeader({ systemIdentifier }).copy(segment);
  return segment;
}
