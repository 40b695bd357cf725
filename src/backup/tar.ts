/**
 * A streaming reader for the tar format pg_basebackup writes (ustar, with
 * the pax and GNU extensions other tools add). It turns chunks of bytes into
 * events that keep every input byte, so the same parse serves both splitting
 * an archive at member boundaries and extracting it.
 *
 * A member is: optional extension headers (pax 'x'/'g', GNU 'L'/'K') with
 * their data, one 512-byte header, the content, and zero padding to 512.
 * The archive ends with two zero blocks.
 */
import { WalshipError } from '../errors.ts';

export const BLOCK_SIZE = 512;
/** Two zero blocks: what ends every tar archive (and every part walship stores). */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK_SIZE);

/** Extension headers larger than this are not plausible in a PostgreSQL backup. */
const MAX_EXTENSION_SIZE = 1 << 20;

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  linkTarget: string;
}

export type TarEvent =
  /** A member starts: `raw` holds all of its header blocks (extensions included). */
  | { kind: 'entry'; entry: TarEntry; raw: Buffer }
  /** Content bytes of the current member. */
  | { kind: 'data'; raw: Buffer }
  /** Zero padding after the content. */
  | { kind: 'padding'; raw: Buffer }
  /** The end-of-archive blocks. */
  | { kind: 'end'; raw: Buffer };

export class TarFormatError extends WalshipError {}

export interface TarHeader {
  name: string;
  typeflag: string;
  mode: number;
  size: number;
  linkName: string;
}

function readString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? length : nul).toString('utf8');
}

/** Octal ASCII, or GNU base-256 (high bit set) for values that do not fit. */
function readNumber(block: Buffer, offset: number, length: number, what: string): number {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    let value = BigInt(field[0]! & 0x7f);
    for (const byte of field.subarray(1)) value = (value << 8n) | BigInt(byte);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`tar header ${what} is too large`);
    return Number(value);
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header ${what} "${text}" is not an octal number`);
  return parseInt(text, 8);
}

export function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** Parses one 512-byte header block and checks its checksum. */
export function parseHeader(block: Buffer): TarHeader {
  const stored = readNumber(block, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored) throw new TarFormatError('tar header checksum mismatch: the archive is corrupt or not a tar archive');
  const name = readString(block, 0, 100);
  const isUstar = readString(block, 257, 5) === 'ustar';
  const prefix = isUstar ? readString(block, 345, 155) : '';
  return {
    name: prefix ? `${prefix}/${name}` : name,
    typeflag: String.fromCharCode(block[156]!) === '\0' ? '0' : String.fromCharCode(block[156]!),
    mode: readNumber(block, 100, 8, 'mode'),
    size: readNumber(block, 124, 12, 'size'),
    linkName: readString(block, 157, 100),
  };
}

function entryType(typeflag: string): TarEntryType {
  switch (typeflag) {
    case '0':
    case '7':
      return 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** pax records: "<length> <key>=<value>\n", repeated. */
export function parsePaxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = space === -1 ? NaN : Number(data.subarray(offset, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0 || offset + length > data.length) {
      throw new TarFormatError('malformed pax extended header');
    }
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals === -1) throw new TarFormatError('malformed pax extended header');
    records.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return records;
}

function paddingFor(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

type State =
  | { at: 'header' }
  | { at: 'extension'; typeflag: string; remaining: number; padding: number; chunks: Buffer[] }
  | { at: 'data'; remaining: number; padding: number }
  | { at: 'padding'; remaining: number }
  | { at: 'end' };

/**
 * Incremental parser: feed chunks with push(), consume the events it yields,
 * then call finish() to check that the archive ended properly.
 */
export class TarParser {
  private state: State = { at: 'header' };
  private readonly block = Buffer.alloc(BLOCK_SIZE);
  private blockFill = 0;
  /** Raw header blocks (and extension data) of the member being read. */
  private headerRaw: Buffer[] = [];
  /** Overrides from pax or GNU extension headers for the next member. */
  private overrides = new Map<string, string>();
  private zeroBlocks = 0;

  get ended(): boolean {
    return this.state.at === 'end';
  }

  *push(chunk: Buffer): Generator<TarEvent> {
    let offset = 0;
    while (offset < chunk.length) {
      const state = this.state;
      if (state.at === 'data') {
        const take = Math.min(state.remaining, chunk.length - offset);
        yield { kind: 'data', raw: chunk.subarray(offset, offset + take) };
        offset += take;
        state.remaining -= take;
        if (state.remaining === 0) this.state = state.padding > 0 ? { at: 'padding', remaining: state.padding } : { at: 'header' };
      } else if (state.at === 'padding') {
        const take = Math.min(state.remaining, chunk.length - offset);
        yield { kind: 'padding', raw: chunk.subarray(offset, offset + take) };
        offset += take;
        state.remaining -= take;
        if (state.remaining === 0) this.state = { at: 'header' };
      } else if (state.at === 'extension') {
        const needed = state.remaining + state.padding - state.chunks.reduce((sum, part) => sum + part.length, 0);
        const piece = Buffer.from(chunk.subarray(offset, offset + Math.min(needed, chunk.length - offset)));
        this.headerRaw.push(piece);
        state.chunks.push(piece);
        offset += piece.length;
        if (piece.length === needed) this.applyExtension(state.typeflag, Buffer.concat(state.chunks).subarray(0, state.remaining));
      } else if (state.at === 'end') {
        const rest = chunk.subarray(offset);
        if (!isZeroBlock(rest)) throw new TarFormatError('unexpected data after the end of the tar archive');
        yield { kind: 'end', raw: rest };
        offset = chunk.length;
      } else {
        const take = Math.min(BLOCK_SIZE - this.blockFill, chunk.length - offset);
        chunk.copy(this.block, this.blockFill, offset, offset + take);
        this.blockFill += take;
        offset += take;
        if (this.blockFill === BLOCK_SIZE) {
          this.blockFill = 0;
          yield* this.onHeaderBlock(Buffer.from(this.block));
        }
      }
    }
  }

  /** Throws unless the archive ended with its end-of-archive blocks. */
  finish(): void {
    if (this.state.at !== 'end' || this.zeroBlocks < 2) {
      throw new TarFormatError('the tar archive is truncated: it ended in the middle of a member');
    }
  }

  private *onHeaderBlock(block: Buffer): Generator<TarEvent> {
    if (isZeroBlock(block)) {
      if (this.headerRaw.length > 0) throw new TarFormatError('tar extension header without a member');
      this.zeroBlocks += 1;
      if (this.zeroBlocks === 2) this.state = { at: 'end' };
      yield { kind: 'end', raw: block };
      return;
    }
    if (this.zeroBlocks > 0) throw new TarFormatError('a zero block in the middle of the tar archive');
    const header = parseHeader(block);
    this.headerRaw.push(block);
    if (['x', 'g', 'L', 'K'].includes(header.typeflag)) {
      if (header.size > MAX_EXTENSION_SIZE) throw new TarFormatError(`tar extension header of ${header.size} bytes is too large`);
      this.state = { at: 'extension', typeflag: header.typeflag, remaining: header.size, padding: paddingFor(header.size), chunks: [] };
      if (header.size === 0) this.applyExtension(header.typeflag, Buffer.alloc(0));
      return;
    }
    const overrides = this.overrides;
    const size = overrides.has('size') ? Number(overrides.get('size')) : header.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError(`invalid member size ${overrides.get('size')}`);
    const type = entryType(header.typeflag);
    const entry: TarEntry = {
      path: overrides.get('path') ?? header.name,
      type,
      mode: header.mode & 0o7777,
      size: type === 'file' || type === 'other' ? size : 0,
      linkTarget: overrides.get('linkpath') ?? header.linkName,
    };
    const raw = Buffer.concat(this.headerRaw);
    this.headerRaw = [];
    this.overrides = new Map();
    yield { kind: 'entry', entry, raw };
    this.state = entry.size > 0 ? { at: 'data', remaining: entry.size, padding: paddingFor(entry.size) } : { at: 'header' };
  }

  private applyExtension(typeflag: string, data: Buffer): void {
    this.state = { at: 'header' };
    if (typeflag === 'x') for (const [key, value] of parsePaxRecords(data)) this.overrides.set(key, value);
    // GNU long names: NUL-terminated path or link target for the next member.
    if (typeflag === 'L') this.overrides.set('path', readString(data, 0, data.length));
    if (typeflag === 'K') this.overrides.set('linkpath', readString(data, 0, data.length));
    // 'g' (pax global) sets defaults pg_basebackup never uses: ignored.
  }
}

/** Every event of a tar archive read from `source`; throws if it is truncated or malformed. */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEvent> {
  const parser = new TarParser();
  for await (const chunk of source) yield* parser.push(chunk);
  parser.finish();
}
