/**
 * Copying one object from a storage to another as it is stored (no
 * decompression, no recompression), checked on the way against what was
 * recorded about it, and create-only: an object the target holds already is
 * never replaced, and one of another size is reported as different content.
 */
import { AlreadyExistsError, WalshipError } from '../errors.ts';
import { copiedMetadata } from '../stages/object-metadata.ts';
import { Pipeline, type Stage } from '../stages/pipeline.ts';
import { upload } from '../stages/transfer.ts';
import type { KnownBody, Storage, StoredObject } from '../storage/storage.ts';

export type RelayOutcome =
  | { kind: 'copied'; bytes: number }
  /** The target held it already, with the same size. */
  | { kind: 'present' }
  /** The target holds another object under the key: left as it is. */
  | { kind: 'different'; detail: string };

export interface RelayOptions {
  /** Stages that check the stored bytes on the way (they must pass them on unchanged). */
  checks?: (stored: StoredObject) => (Stage | undefined)[];
  /** Replace what the target holds: only for documents that change in place (a backup's metadata.json, a sentinel's permanent mark). */
  replace?: boolean;
  /** A listing just showed the key absent at the target, so there is no need to look first. */
  knownAbsent?: boolean;
  /**
   * Opens the object at the source again: with it, an object whose source
   * recorded a checksum of its bytes may be streamed to the target in one
   * request, sent again from the start on a retry (PutOptions.known).
   */
  reopen?: () => Promise<StoredObject>;
  /** The SHA-256 of the stored bytes that a record at the source gives (a backup's or a dump set's sentinel). */
  recordedSha256?: string;
}

/** Relays `stored` (opened at the source) to the same key at `target`; resolves once the copy is durable. */
export async function relay(stored: StoredObject, target: Storage, options: RelayOptions = {}): Promise<RelayOutcome> {
  const { key, size } = stored.info;
  // A store that may ignore create-only puts (best-effort) is asked first, so nothing there is replaced.
  if (!options.replace && !options.knownAbsent && target.capabilities.conditionalCreate === 'best-effort') {
    const existing = await target.head(key);
    if (existing) {
      stored.body.destroy();
      return compare(size, existing.size, target);
    }
  }
  try {
    await upload(target, key, stored.body, checksOf(stored, options), { metadata: copiedMetadata(stored.metadata), createOnly: !options.replace, known: knownBody(stored, options) });
    return { kind: 'copied', bytes: size };
  } catch (error) {
    stored.body.destroy();
    if (!(error instanceof AlreadyExistsError)) throw error;
    const existing = await target.head(key);
    return existing ? compare(size, existing.size, target) : { kind: 'different', detail: `it appeared and vanished at ${target.location} while walship copied it` };
  }
}

/**
 * The stored bytes as the source recorded them (the CRC-32 the store keeps,
 * or the SHA-256 of a sentinel), to open again through the same checks;
 * undefined where nothing records them or the source cannot be reopened.
 */
function knownBody(stored: StoredObject, options: RelayOptions): KnownBody | undefined {
  const { storedCrc32, info: { key, size } } = stored;
  const { reopen, recordedSha256 } = options;
  const checksum = storedCrc32 !== undefined ? { algorithm: 'crc32' as const, hex: storedCrc32 } : recordedSha256 && { algorithm: 'sha256' as const, hex: recordedSha256 };
  if (!checksum || reopen === undefined) return undefined;
  return {
    size,
    checksum,
    reopen: async () => {
      const again = await reopen();
      if (again.storedCrc32 !== storedCrc32 || again.info.size !== size) {
        again.body.destroy();
        throw new WalshipError(`${key} changed at the source while walship copied it`);
      }
      return new Pipeline(again.body, checksOf(again, options)).readable();
    },
  };
}

function checksOf(stored: StoredObject, options: RelayOptions): (Stage | undefined)[] {
  return options.checks?.(stored) ?? [];
}

function compare(sourceSize: number, targetSize: number, target: Storage): RelayOutcome {
  if (sourceSize === targetSize) return { kind: 'present' };
  return { kind: 'different', detail: `${target.location} holds ${targetSize} bytes under this name, the source ${sourceSize}` };
}
