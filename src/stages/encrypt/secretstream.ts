/**
 * WAL-G's libsodium format (internal/crypto/libsodium), as stream transforms:
 * crypto_secretstream_xchacha20poly1305 without additional data. A 24-byte
 * header, then the content in 8192-byte chunks, each stored as 8209 bytes
 * (encrypted tag, content and MAC) and tagged MESSAGE, then exactly one chunk
 * shorter than 8192 bytes tagged FINAL: empty when the content's length is a
 * multiple of 8192, so a stream cut at a chunk boundary is told from a whole one.
 *
 * Reading is strict: a chunk that fails authentication, a stream that ends
 * without its FINAL chunk, a full-size FINAL chunk (WAL-G refuses it too) and
 * any other tag are errors naming the object, never guessed around.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { describeError, IntegrityError, WalshipError } from '../../errors.ts';

export type Sodium = typeof import('sodium-native');

/** Content bytes per chunk: WAL-G's chunkSize. */
export const PLAIN_CHUNK = 8192;
export const HEADER_BYTES = 24;
/** What each chunk adds: its encrypted tag byte and a 16-byte MAC. */
export const CHUNK_OVERHEAD = 17;
const STORED_CHUNK = PLAIN_CHUNK + CHUNK_OVERHEAD;

/** The first bytes of the compressed formats walship meets, to say what an object that is not encrypted holds instead. */
const PLAIN_FORMATS: [name: string, magic: Buffer][] = [
  ['a zstd frame', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['an LZ4 frame', Buffer.from([0x04, 0x22, 0x4d, 0x18])],
];

let sodium: Promise<Sodium> | undefined;

/** A CommonJS module's exports, whichever way it was imported (Node's ESM loader or the bundle). */
function exportsOf<T>(module: unknown): T {
  return ((module as { default?: T }).default ?? module) as T;
}

/** libsodium (sodium-native's addon), loaded on first use: only where a key is configured. */
export function loadSodium(): Promise<Sodium> {
  sodium ??= import('sodium-native').then(
    (module) => {
      const binding = exportsOf<Sodium>(module);
      if (binding.crypto_secretstream_xchacha20poly1305_HEADERBYTES !== HEADER_BYTES || binding.crypto_secretstream_xchacha20poly1305_ABYTES !== CHUNK_OVERHEAD) {
        throw new Error('its crypto_secretstream_xchacha20poly1305 has other sizes than WAL-G writes');
      }
      return binding;
    },
  ).catch((error: unknown) => {
    throw new WalshipError(
      `cannot load libsodium, which the archive's encryption needs (${describeError(error)}): set WALSHIP_CACHE_DIR to a private directory where walship may write and run its native library (not a noexec mount)`,
    );
  });
  return sodium;
}

/** Encrypts the content that passes through, in WAL-G's chunking. */
export class EncryptTransform extends Transform {
  private readonly sodium: Sodium;
  private readonly state: Buffer;
  /** Written in front of the first output, then dropped. */
  private header: Buffer | undefined;
  private readonly pending = Buffer.allocUnsafe(PLAIN_CHUNK);
  private pendingBytes = 0;

  constructor(sodium: Sodium, key: Uint8Array) {
    super();
    this.sodium = sodium;
    this.state = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES);
    this.header = Buffer.alloc(HEADER_BYTES);
    sodium.crypto_secretstream_xchacha20poly1305_init_push(this.state, this.header, key);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      callback(null, this.sealWholeChunks(chunk));
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      const output = Buffer.allocUnsafe((this.header?.length ?? 0) + this.pendingBytes + CHUNK_OVERHEAD);
      const at = this.takeHeader(output);
      this.seal(this.pending.subarray(0, this.pendingBytes), output.subarray(at), true);
      callback(null, output);
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Every whole chunk `chunk` completes, in one buffer; the rest waits for the next piece. */
  private sealWholeChunks(chunk: Buffer): Buffer | undefined {
    const chunks = Math.floor((this.pendingBytes + chunk.length) / PLAIN_CHUNK);
    if (chunks === 0) {
      this.pendingBytes += chunk.copy(this.pending, this.pendingBytes);
      return undefined;
    }
    const output = Buffer.allocUnsafe((this.header?.length ?? 0) + chunks * STORED_CHUNK);
    let at = this.takeHeader(output);
    let offset = 0;
    if (this.pendingBytes > 0) {
      offset = PLAIN_CHUNK - this.pendingBytes;
      chunk.copy(this.pending, this.pendingBytes, 0, offset);
      at += this.seal(this.pending, output.subarray(at), false);
      this.pendingBytes = 0;
    }
    for (; offset + PLAIN_CHUNK <= chunk.length; offset += PLAIN_CHUNK) {
      at += this.seal(chunk.subarray(offset, offset + PLAIN_CHUNK), output.subarray(at), false);
    }
    this.pendingBytes = chunk.copy(this.pending, 0, offset);
    return output;
  }

  private takeHeader(output: Buffer): number {
    if (!this.header) return 0;
    const written = this.header.copy(output);
    this.header = undefined;
    return written;
  }

  /** Encrypts one chunk into the start of `output`; returns the bytes written. */
  private seal(content: Buffer, output: Buffer, final: boolean): number {
    const tag = final ? this.sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL : this.sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    const written = content.length + CHUNK_OVERHEAD;
    this.sodium.crypto_secretstream_xchacha20poly1305_push(this.state, output.subarray(0, written), content, null, tag);
    return written;
  }
}

export interface DecryptOptions {
  /** The object, named in errors. */
  what: string;
  /** Which setting the key came from, named when it does not fit (never the key). */
  keyOrigin: string;
  /** walship recorded the object as encrypted: a failure to decrypt is never a plain object's. */
  recorded: boolean;
  /** walship recorded that this very key encrypted it: a chunk that fails authentication is damage. */
  keyConfirmed: boolean;
}

/** Decrypts WAL-G's format; every deviation fails the stream with an IntegrityError naming the object. */
export class DecryptTransform extends Transform {
  private readonly sodium: Sodium;
  private readonly key: Uint8Array;
  private readonly options: DecryptOptions;
  private state: Buffer | undefined;
  /** The stream's header, kept to say what an object that does not decrypt holds. */
  private header: Buffer | undefined;
  /** The header, then a chunk, gathered across pieces. */
  private readonly pending = Buffer.allocUnsafe(STORED_CHUNK);
  private pendingBytes = 0;
  private chunksRead = 0;
  private readonly tag = Buffer.alloc(1);

  constructor(sodium: Sodium, key: Uint8Array, options: DecryptOptions) {
    super();
    this.sodium = sodium;
    this.key = key;
    this.options = options;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let offset = 0;
      if (!this.state) {
        offset = this.gather(chunk, 0, HEADER_BYTES);
        if (this.pendingBytes < HEADER_BYTES) return callback();
        this.header = Buffer.from(this.pending.subarray(0, HEADER_BYTES));
        this.state = Buffer.alloc(this.sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES);
        this.sodium.crypto_secretstream_xchacha20poly1305_init_pull(this.state, this.header, this.key);
        this.pendingBytes = 0;
      }
      const chunks = Math.floor((this.pendingBytes + chunk.length - offset) / STORED_CHUNK);
      const output = Buffer.allocUnsafe(chunks * PLAIN_CHUNK);
      let at = 0;
      if (this.pendingBytes > 0 && chunks > 0) {
        offset = this.gather(chunk, offset, STORED_CHUNK);
        at += this.open(this.pending, output.subarray(at), false);
        this.pendingBytes = 0;
      }
      for (; offset + STORED_CHUNK <= chunk.length; offset += STORED_CHUNK) {
        at += this.open(chunk.subarray(offset, offset + STORED_CHUNK), output.subarray(at), false);
      }
      this.gather(chunk, offset, STORED_CHUNK);
      callback(null, at > 0 ? output : undefined);
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      const { what } = this.options;
      if (!this.state) {
        throw new IntegrityError(`${what} is corrupt: ${this.pendingBytes} bytes, too short to be encrypted (a ${HEADER_BYTES}-byte header and a final chunk of ${CHUNK_OVERHEAD} bytes at least)`);
      }
      if (this.pendingBytes < CHUNK_OVERHEAD) {
        throw new IntegrityError(`${what} is corrupt: its encrypted stream ends after ${this.chunksRead} full chunks${this.pendingBytes ? ` and ${this.pendingBytes} bytes` : ''}, without the final chunk (truncated)`);
      }
      const output = Buffer.allocUnsafe(this.pendingBytes - CHUNK_OVERHEAD);
      this.open(this.pending.subarray(0, this.pendingBytes), output, true);
      callback(null, output.length > 0 ? output : undefined);
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Copies from `chunk` at `offset` until `pending` holds `size` bytes; returns the new offset. */
  private gather(chunk: Buffer, offset: number, size: number): number {
    const copied = chunk.copy(this.pending, this.pendingBytes, offset, offset + size - this.pendingBytes);
    this.pendingBytes += copied;
    return offset + copied;
  }

  /** Decrypts one stored chunk into the start of `output`; returns the content bytes. */
  private open(stored: Buffer, output: Buffer, last: boolean): number {
    const { what } = this.options;
    const sodium = this.sodium;
    const index = ++this.chunksRead;
    try {
      sodium.crypto_secretstream_xchacha20poly1305_pull(this.state!, output.subarray(0, stored.length - CHUNK_OVERHEAD), this.tag, stored, null);
    } catch {
      throw index === 1 ? this.firstChunkFailure() : new IntegrityError(`${what} is corrupt: encrypted chunk ${index} fails authentication (the chunks before it decrypt, so the key is right)`);
    }
    const expected = last ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    if (this.tag[0] !== expected) {
      const where = last ? 'the last, short chunk' : 'a full chunk';
      throw new IntegrityError(`${what} is corrupt: encrypted chunk ${index} has tag ${this.tag[0]}, where WAL-G's format has ${last ? 'FINAL' : 'MESSAGE'} for ${where}`);
    }
    return stored.length - CHUNK_OVERHEAD;
  }

  private firstChunkFailure(): IntegrityError {
    const { what, keyOrigin, recorded, keyConfirmed } = this.options;
    if (keyConfirmed) return new IntegrityError(`${what} is corrupt: its first encrypted chunk fails authentication, though the configured key is the one it was stored with`);
    const header = this.header!;
    const plain = recorded ? undefined : PLAIN_FORMATS.find(([, magic]) => header.subarray(0, magic.length).equals(magic));
    if (plain) {
      return new IntegrityError(
        `${what} is not encrypted (it starts with ${plain[0]}), but a key is configured (${keyOrigin}): walship, as WAL-G, decrypts every object not recorded as unencrypted; it was stored before encryption was turned on, so read it without the key`,
      );
    }
    return new IntegrityError(`${what} cannot be decrypted with the configured key (${keyOrigin}): it was encrypted with another key, or it is damaged`);
  }
}
