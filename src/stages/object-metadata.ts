/**
 * The integrity metadata walship stores with an object: the CRC-32 and size
 * of its uncompressed content, under names valid for S3, GCS and Azure alike.
 * Objects without it (WAL-G's, or an older tool's) are read unchecked.
 */
import type { ObjectMetadata } from '../storage/storage.ts';
import type { ContentDigest, ExpectedContent } from './checksum.ts';

export const METADATA_CRC32 = 'walship_crc32';
export const METADATA_SIZE = 'walship_size';
/** Every name walship stores metadata under starts so: other tools' and the stores' own entries do not travel with a copy. */
const WALSHIP_METADATA = 'walship_';

/** The metadata recording `digest`, a CRC-32 of the content. */
export function integrityMetadata(digest: ContentDigest): ObjectMetadata {
  return { [METADATA_CRC32]: digest.checksum, [METADATA_SIZE]: String(digest.size) };
}

/** What walship recorded about an object's content, where it wrote the object. */
export function expectedContent(metadata: ObjectMetadata): ExpectedContent {
  const size = metadata[METADATA_SIZE];
  return {
    algorithm: 'crc32',
    checksum: metadata[METADATA_CRC32],
    size: size !== undefined && /^\d+$/.test(size) ? Number(size) : undefined,
  };
}

/** The metadata walship stored with an object, to store with a copy of it. */
export function copiedMetadata(metadata: ObjectMetadata): ObjectMetadata {
  return Object.fromEntries(Object.entries(metadata).filter(([name]) => name.startsWith(WALSHIP_METADATA)));
}
