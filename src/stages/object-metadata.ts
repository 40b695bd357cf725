/**
 * The metadata walship stores with an object, under names valid for S3, GCS
 * and Azure alike: the CRC-32 and size of its uncompressed content, and how
 * it is encrypted. Objects without it (WAL-G's, or an older tool's) are read
 * unchecked.
 */
import type { ObjectMetadata } from '../storage/storage.ts';
import type { ContentDigest, ExpectedContent } from './checksum.ts';

export const METADATA_CRC32 = 'walship_crc32';
export const METADATA_SIZE = 'walship_size';
/** Every name walship stores metadata under starts so: other tools' and the stores' own entries do not travel with a copy. */
const WALSHIP_METADATA = 'walship_';
/** 'libsodium' (WAL-G's format); absent on objects stored unencrypted. */
export const METADATA_ENCRYPTION = 'walship_encryption';
/** Which key encrypted the object (see stages/encrypt/encryption.ts), never the key. */
export const METADATA_KEY_ID = 'walship_key_id';

export const ENCRYPTION_METHOD = 'libsodium';

/**
 * The metadata recording `digest`, a CRC-32 of the content. An encrypted
 * object keeps only the size: a checksum of the plain content would let
 * anyone who reads the store confirm a guess of it (a history file's few lines).
 */
export function integrityMetadata(digest: ContentDigest, encrypted: boolean): ObjectMetadata {
  return encrypted ? { [METADATA_SIZE]: String(digest.size) } : { [METADATA_CRC32]: digest.checksum, [METADATA_SIZE]: String(digest.size) };
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

/** How an object's stored bytes are encrypted, as far as walship recorded it. */
export interface RecordedEncryption {
  /**
   * 'none' (walship stored it unencrypted), 'libsodium', another method's
   * name, or undefined where nothing says (objects WAL-G wrote).
   */
  method: string | undefined;
  keyId?: string;
}

export const UNRECORDED: RecordedEncryption = { method: undefined };

export function encryptionMetadata(keyId: string): ObjectMetadata {
  return { [METADATA_ENCRYPTION]: ENCRYPTION_METHOD, [METADATA_KEY_ID]: keyId };
}

/** How walship stored the object whose metadata this is: its other records without an encryption say unencrypted. */
export function recordedEncryption(metadata: ObjectMetadata): RecordedEncryption {
  const method = metadata[METADATA_ENCRYPTION];
  if (method !== undefined) return { method, keyId: metadata[METADATA_KEY_ID] };
  return metadata[METADATA_SIZE] !== undefined ? { method: 'none' } : UNRECORDED;
}
