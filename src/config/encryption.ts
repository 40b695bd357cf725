/**
 * The archive's client-side encryption key, read with WAL-G's exact rules
 * (internal/crypto/libsodium, internal/configure.go):
 *   WALG_LIBSODIUM_KEY       the key as given, not trimmed: its bytes, even where they are not UTF-8
 *   WALG_LIBSODIUM_KEY_PATH  a file holding it, trimmed of white space as Go's strings.TrimSpace does
 *   WALG_LIBSODIUM_KEY_TRANSFORM
 *     none (default)  the bytes themselves: at least 25, zero-padded or cut to 32
 *     base64          standard alphabet with padding (line breaks ignored), exactly 32 bytes
 *     hex             exactly 32 bytes
 * walship is stricter where WAL-G would quietly pick: both key settings at
 * once, a transform without a key, a relative key path and a key file other
 * users may read or write are refused. The key never appears in any output.
 */
import { readFileSync, statSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError } from '../errors.ts';
import type { Config } from './config.ts';

export const LIBSODIUM_KEY_BYTES = 32;
/** WAL-G's floor for keys taken as they are (transform none). */
const MINIMUM_PLAIN_KEY_BYTES = 25;

export const KEY_TRANSFORMS = ['none', 'base64', 'hex'] as const;
export type KeyTransform = (typeof KEY_TRANSFORMS)[number];

/** The 32-byte key of WAL-G's libsodium encryption, and which setting gave it (for messages: never the key). */
export class EncryptionKey {
  readonly method = 'libsodium';
  /** Where the key came from: "WALG_LIBSODIUM_KEY" or "WALG_LIBSODIUM_KEY_PATH=/etc/walship/key". */
  readonly origin: string;
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array, origin: string) {
    if (bytes.length !== LIBSODIUM_KEY_BYTES) throw new Error(`internal error: a libsodium key has ${LIBSODIUM_KEY_BYTES} bytes`);
    this.#bytes = bytes;
    this.origin = origin;
  }

  /** The key itself, for the encryption stages only. */
  bytes(): Uint8Array {
    return this.#bytes;
  }

  // Printed or serialised by mistake, it still shows nothing.
  toJSON(): string {
    return `(libsodium key from ${this.origin})`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/** The configured key, or undefined when the archive is not encrypted; a ConfigError naming the setting when it is unusable. */
export function readEncryptionKey(config: Config): EncryptionKey | undefined {
  const inline = config.get('WALG_LIBSODIUM_KEY');
  const path = config.get('WALG_LIBSODIUM_KEY_PATH');
  const transformSet = config.get('WALG_LIBSODIUM_KEY_TRANSFORM') !== undefined;
  const transform = config.enumOf('WALG_LIBSODIUM_KEY_TRANSFORM', KEY_TRANSFORMS, 'none');
  if (inline !== undefined && path !== undefined) {
    throw new ConfigError(
      `both ${config.origin('WALG_LIBSODIUM_KEY')} and ${config.origin('WALG_LIBSODIUM_KEY_PATH')} are set: set only one (WAL-G would use WALG_LIBSODIUM_KEY)`,
    );
  }
  if (inline === undefined && path === undefined) {
    if (transformSet) {
      throw new ConfigError(
        `${config.origin('WALG_LIBSODIUM_KEY_TRANSFORM')} is set, but no key is: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH, or unset it to store the archive unencrypted`,
      );
    }
    return undefined;
  }
  if (inline !== undefined) {
    return new EncryptionKey(transformKey(inlineKeyBytes(config, inline), transform, config.origin('WALG_LIBSODIUM_KEY')), 'WALG_LIBSODIUM_KEY');
  }
  const file = config.absolutePath('WALG_LIBSODIUM_KEY_PATH')!;
  const origin = `${config.origin('WALG_LIBSODIUM_KEY_PATH')}=${file}`;
  return new EncryptionKey(transformKey(trimSpace(readKeyFile(file, origin)), transform, `the key in ${origin}`), `WALG_LIBSODIUM_KEY_PATH=${file}`);
}

/**
 * WALG_LIBSODIUM_KEY's bytes, as WAL-G takes them (a Go string is bytes).
 * Text is its UTF-8 bytes; but Node decodes the environment as UTF-8 and
 * replaces bytes that are not with U+FFFD, so such a key is read back from
 * the environment walship started with (/proc/self/environ), as bytes.
 */
function inlineKeyBytes(config: Config, inline: string): Buffer {
  if (!inline.includes(REPLACEMENT_CHARACTER)) return Buffer.from(inline, 'utf8');
  const origin = config.origin('WALG_LIBSODIUM_KEY');
  if (origin !== 'WALG_LIBSODIUM_KEY') {
    throw new ConfigError(
      `${origin} holds bytes that are not UTF-8 (or U+FFFD), which a config file cannot give exactly (WAL-G refuses such a YAML file): put the key in a key file (WALG_LIBSODIUM_KEY_PATH), whose bytes are read as they are`,
    );
  }
  const raw = startingEnvironment('WALG_LIBSODIUM_KEY').find((value) => value.toString('utf8') === inline);
  if (!raw) {
    throw new ConfigError(
      'WALG_LIBSODIUM_KEY holds bytes that are not UTF-8 (or U+FFFD), and walship cannot read them exactly here: put the key in a key file (WALG_LIBSODIUM_KEY_PATH), or give it as hex or base64 (WALG_LIBSODIUM_KEY_TRANSFORM)',
    );
  }
  return raw;
}

const REPLACEMENT_CHARACTER = '\uFFFD';

/** The values `name` had, as bytes, in the environment this process started with; none where it cannot be read. */
function startingEnvironment(name: string): Buffer[] {
  let environ: Buffer;
  try {
    environ = readFileSync('/proc/self/environ');
  } catch {
    return [];
  }
  const prefix = Buffer.from(`${name}=`);
  const values: Buffer[] = [];
  for (let start = 0, end; start < environ.length; start = end + 1) {
    end = environ.indexOf(0, start);
    if (end < 0) end = environ.length;
    const entry = environ.subarray(start, end);
    if (entry.subarray(0, prefix.length).equals(prefix)) values.push(Buffer.from(entry.subarray(prefix.length)));
  }
  return values;
}

/** The key file's bytes; refused when other users may read it or replace it. */
function readKeyFile(file: string, origin: string): Buffer {
  try {
    const mode = statSync(file).mode;
    if ((mode & 0o007) !== 0) {
      throw new ConfigError(
        `${origin} may be read or written by every user (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod o-rwx ${file}, and keep it readable by the user walship runs as only`,
      );
    }
    return readFileSync(file);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(`cannot read ${origin} (${code}): make it a file readable by the user walship runs as (the PostgreSQL OS user for archive_command and restore_command)`);
  }
}

/** The 32-byte key that `transform` makes of `given`; `what` names it in the one-line error (never the key). */
export function transformKey(given: Buffer, transform: KeyTransform, what: string): Uint8Array {
  let key: Buffer;
  switch (transform) {
    case 'none':
      if (given.length < MINIMUM_PLAIN_KEY_BYTES) {
        throw new ConfigError(
          `${what} is too short: ${given.length} bytes, and WALG_LIBSODIUM_KEY_TRANSFORM=none takes at least ${MINIMUM_PLAIN_KEY_BYTES}; better use a random 32-byte key, such as \`openssl rand -hex 32\` with WALG_LIBSODIUM_KEY_TRANSFORM=hex`,
        );
      }
      // Cut to 32 bytes, or zero-padded to 32: what WAL-G has always done with such keys.
      key = Buffer.alloc(LIBSODIUM_KEY_BYTES);
      given.copy(key, 0, 0, LIBSODIUM_KEY_BYTES);
      return key;
    case 'base64': {
      // Go's base64.StdEncoding: padding required, line breaks skipped, nothing else tolerated.
      const text = given.toString('latin1').replace(/[\r\n]/g, '');
      if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
        throw new ConfigError(`${what} is not valid base64 (WALG_LIBSODIUM_KEY_TRANSFORM=base64): expected 44 characters of standard base64, such as \`openssl rand -base64 32\` prints`);
      }
      key = Buffer.from(text, 'base64');
      break;
    }
    case 'hex': {
      const text = given.toString('latin1');
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) {
        throw new ConfigError(`${what} is not valid hex (WALG_LIBSODIUM_KEY_TRANSFORM=hex): expected 64 hex digits, such as \`openssl rand -hex 32\` prints`);
      }
      key = Buffer.from(text, 'hex');
      break;
    }
  }
  if (key.length !== LIBSODIUM_KEY_BYTES) {
    throw new ConfigError(`${what} decodes to ${key.length} bytes (WALG_LIBSODIUM_KEY_TRANSFORM=${transform}): a libsodium key has exactly ${LIBSODIUM_KEY_BYTES}`);
  }
  return key;
}

/** The UTF-8 encodings of the characters Go's unicode.IsSpace accepts, longest first. */
const SPACES = [
  ...['\u1680', '\u2000', '\u2001', '\u2002', '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\u0085', '\u00a0'],
  '\t', '\n', '\v', '\f', '\r', ' ',
].map((space) => Buffer.from(space, 'utf8'));

/**
 * Go's strings.TrimSpace on bytes: a key file is read as bytes and, with
 * transform none, its bytes are the key, so nothing may be decoded and
 * encoded again (invalid UTF-8 stays as it is).
 */
export function trimSpace(bytes: Buffer): Buffer {
  let start = 0;
  let end = bytes.length;
  for (let space; (space = SPACES.find((candidate) => end - start >= candidate.length && bytes.subarray(start, start + candidate.length).equals(candidate))); ) start += space.length;
  for (let space; (space = SPACES.find((candidate) => end - start >= candidate.length && bytes.subarray(end - candidate.length, end).equals(candidate))); ) end -= space.length;
  return bytes.subarray(start, end);
}
