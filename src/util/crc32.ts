/** A CRC-32 as walship records and compares it: 8 lowercase hex digits. */
export function crc32Hex(checksum: number): string {
  return checksum.toString(16).padStart(8, '0');
}
