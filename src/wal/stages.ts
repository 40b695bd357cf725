/**
 * The stages WAL goes through, in one place for every WAL transfer: on the
 * way into storage it is compressed; on the way out it is decompressed and
 * checked against the CRC-32 and size recorded with it. (Encryption goes
 * after compression and before decompression.)
 */
import type { Codec, CompressOptions } from '../stages/compress/codec.ts';
import { VerifyStage } from '../stages/checksum.ts';
import { expectedContent } from '../stages/object-metadata.ts';
import type { Stage } from '../stages/pipeline.ts';
import type { StoredObject } from '../storage/storage.ts';

export function walUploadStages(codec: Codec, level: number, options: CompressOptions): (Stage | undefined)[] {
  return [codec.compress(level, options)];
}

export function walDownloadStages(codec: Codec, stored: StoredObject): (Stage | undefined)[] {
  return [codec.decompress(stored.info.key), new VerifyStage(expectedContent(stored.metadata), stored.info.key)];
}
