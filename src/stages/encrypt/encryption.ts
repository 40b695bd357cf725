/**
 * Encryption as a stage of the stored form: after compression on the way in,
 * before decompression on the way out. Which objects are decrypted:
 *   recorded 'libsodium'  decrypted; without a key, or under another key id, an error saying so
 *   recorded 'none'       read as it is: walship stored it before the key was set
 *   nothing recorded      (WAL-G's objects) decrypted when a key is configured, as WAL-G does;
 *                         without a key, read as they are, and a frame that does not parse
 *                         says the object may be encrypted
 * libsodium is loaded only when a stage runs, so nothing costs without a key.
 */
import type { EncryptionKey } from '../../config/encryption.ts';
import { IntegrityError, WalshipError } from '../../errors.ts';
import { ENCRYPTION_METHOD, type RecordedEncryption } from '../object-metadata.ts';
import type { TransformStage } from '../pipeline.ts';
import { DecryptTransform, EncryptTransform, loadSodium } from './secretstream.ts';

export const KEY_SETTINGS = 'WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH (with WALG_LIBSODIUM_KEY_TRANSFORM)';
/** Bytes of the key id: enough to tell keys apart, far too few to matter to anyone guessing the key. */
const KEY_ID_BYTES = 8;
const KEY_ID_CONTEXT = Buffer.from('walship key id');

const keyIds = new WeakMap<EncryptionKey, Promise<string>>();

/**
 * A short public name for `key`: a keyed BLAKE2b of a fixed text, so the same
 * key always has the same id and the id tells nothing of the key. Stored with
 * each object, it tells a wrong key from a damaged object, and which objects
 * an old key encrypted.
 */
export function keyIdOf(key: EncryptionKey): Promise<string> {
  let id = keyIds.get(key);
  if (!id) {
    id = loadSodium().then((sodium) => {
      const hash = Buffer.alloc(16);
      sodium.crypto_generichash(hash, KEY_ID_CONTEXT, key.bytes());
      return hash.subarray(0, KEY_ID_BYTES).toString('hex');
    });
    keyIds.set(key, id);
  }
  return id;
}

export function encryptStage(key: EncryptionKey): TransformStage {
  return { name: 'encrypt', transform: async () => new EncryptTransform(await loadSodium(), key.bytes()) };
}

/** The stage that decrypts the object `what`, recorded as `recorded`; undefined when it is read as it is. */
export function decryptStage(recorded: RecordedEncryption, key: EncryptionKey | undefined, what: string): TransformStage | undefined {
  if (recorded.method === 'none' || (recorded.method === undefined && !key)) return undefined;
  return {
    name: 'decrypt',
    // The checks run when the transfer starts, so a refusal stops it as any failing stage does.
    transform: async () => {
      if (recorded.method !== undefined && recorded.method !== ENCRYPTION_METHOD) {
        throw new WalshipError(`${what} is encrypted with "${recorded.method}", which walship cannot decrypt`);
      }
      if (!key) throw new WalshipError(`${what} is encrypted (${ENCRYPTION_METHOD}), but no key is configured: set ${KEY_SETTINGS} to the key it was stored with`);
      const keyId = await keyIdOf(key);
      if (recorded.keyId !== undefined && recorded.keyId !== keyId) {
        throw new WalshipError(
          `${what} was encrypted with another key (key id ${recorded.keyId}) than the configured one (${key.origin}, key id ${keyId}): configure the key it was stored with`,
        );
      }
      return new DecryptTransform(await loadSodium(), key.bytes(), {
        what,
        keyOrigin: key.origin,
        recorded: recorded.method !== undefined,
        keyConfirmed: recorded.keyId === keyId,
      });
    },
  };
}

/**
 * `decompress` for an object nothing says is unencrypted, read without a key:
 * when its frames do not parse, the error says it may be encrypted.
 */
export function hintingEncryption(decompress: TransformStage | undefined): TransformStage | undefined {
  if (!decompress) return undefined;
  // Only damaged content: a storage failure on the way is no sign of encryption.
  const hinted = <T>(error: T): T | IntegrityError =>
    error instanceof IntegrityError
      ? new IntegrityError(`${error.message}; it carries no walship metadata, so it may be encrypted (WAL-G's libsodium encryption): then set ${KEY_SETTINGS}`, { cause: error })
      : error;
  return {
    ...decompress,
    describeFailure: (error) => hinted(decompress.describeFailure ? decompress.describeFailure(error) : (error as Error)),
    into: decompress.into &&
      (async (source, consume) => {
        try {
          return await decompress.into!(source, consume);
        } catch (error) {
          throw hinted(error);
        }
      }),
  };
}
