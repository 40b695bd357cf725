/**
 * A stored part on its way back to its tar bytes, for backup-fetch and
 * backup-verify alike: the SHA-256 of the stored bytes is checked against the
 * sentinel at the end of the stream (walship's sentinels record it; WAL-G's
 * do not), and the bytes are decrypted (with a key) and decompressed (zstd
 * and LZ4 check their own frames' content as they go).
 */
import type { Readable } from 'node:stream';
import { type BackupPart, type BackupSentinel, partEncryption } from '../archive/backups.ts';
import { partExtension, partKey } from '../archive/layout.ts';
import { IntegrityError, NotFoundError } from '../errors.ts';
import { VerifyStage } from '../stages/checksum.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
import type { Stage } from '../stages/pipeline.ts';
import { contentStages } from '../stages/transfer.ts';
import type { Storage } from '../storage/storage.ts';

/** A part by name, with the checksum and size its sentinel recorded, where it recorded them. */
export type PartToOpen = Pick<BackupPart, 'Name'> & Partial<Pick<BackupPart, 'SHA256' | 'CompressedSize'>>;

export interface OpenedPart {
  key: string;
  /** The stored bytes, as storage sends them. */
  body: Readable;
  /** From the stored bytes to the tar archive. */
  stages: (Stage | undefined)[];
}

export async function openPart(storage: Storage, sentinel: BackupSentinel, part: PartToOpen): Promise<OpenedPart> {
  const backup = sentinel.BackupName;
  const key = partKey(backup, part.Name);
  const extension = partExtension(part.Name);
  const codec = codecForExtension(extension);
  if (!codec) throw new IntegrityError(`${key} is compressed with "${extension}", which walship cannot read`);
  let stored;
  try {
    stored = await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new IntegrityError(`${key} is missing from ${storage.location}: backup ${backup} is damaged`);
    throw error;
  }
  const stages = [
    part.SHA256 === undefined ? undefined : new VerifyStage({ algorithm: 'sha256', checksum: part.SHA256, size: part.CompressedSize }, key),
    ...contentStages(storage, codec, stored, { verify: false, recorded: partEncryption(sentinel) }),
  ];
  return { key, body: stored.body, stages };
}
