/** Builds small tar archives for tests: ustar headers as pg_basebackup writes them, plus pax records. */
import { BLOCK_SIZE, END_OF_ARCHIVE } from '../../src/backup/tar.ts';

export interface TestMember {
  name: string;
  content?: Buffer | string;
  /** '0' file (default), '5' directory, '2' symlink, '1' hard link, 'x' pax header, ... */
  type?: string;
  mode?: number;
  linkName?: string;
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0';
}

export function tarHeader(member: TestMember, size: number): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  block.write(member.name, 0, 100, 'utf8');
  block.write(octal(member.mode ?? 0o600, 8), 100, 'latin1');
  block.write(octal(0, 8), 108, 'latin1');
  block.write(octal(0, 8), 116, 'latin1');
  block.write(octal(size, 12), 124, 'latin1');
  block.write(octal(0, 12), 136, 'latin1');
  block.write(member.type ?? '0', 156, 'latin1');
  block.write(member.linkName ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148, 'latin1');
  return block;
}

export function tarMember(member: TestMember): Buffer {
  const content = Buffer.from(member.content ?? '');
  const padding = (BLOCK_SIZE - (content.length % BLOCK_SIZE)) % BLOCK_SIZE;
  return Buffer.concat([tarHeader(member, content.length), content, Buffer.alloc(padding)]);
}

/** A pax record "<length> key=value\n" (the length counts itself). */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length += 1;
  return `${length}${body}`;
}

export function tarArchive(members: TestMember[]): Buffer {
  return Buffer.concat([...members.map(tarMember), END_OF_ARCHIVE]);
}
