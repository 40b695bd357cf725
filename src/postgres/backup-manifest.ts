/**
 * backup_manifest (PostgreSQL 13+), the last member of a base backup: JSON
 * with a "Files" list (Path or hex Encoded-Path, Size, checksum) and
 * "WAL-Ranges" (Timeline, Start-LSN, End-LSN) near its end.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, WalshipError } from '../errors.ts';
import { isMissing } from '../fs/missing.ts';
import { parseLsn } from './lsn.ts';

export interface WalRange {
  timeline: number;
  startLsn: bigint;
  endLsn: bigint;
}

/**
 * The WAL ranges, read from the end of the manifest: `tail` needs to hold only
 * the last few kilobytes, so a manifest is never held whole in memory.
 */
export function parseWalRanges(tail: string): WalRange[] {
  const pattern = /"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)",\s*"End-LSN":\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)"/g;
  return [...tail.matchAll(pattern)].map((match) => ({
    timeline: Number(match[1]),
    startLsn: parseLsn(match[2]!),
    endLsn: parseLsn(match[3]!),
  }));
}

/** The position where the backup became consistent: the end of its last WAL range. */
export function backupEndLsn(tail: string): { timeline: number; endLsn: bigint } {
  const ranges = parseWalRanges(tail);
  const last = ranges.at(-1);
  if (!last) throw new WalshipError('backup_manifest has no WAL-Ranges: cannot tell where the backup ends');
  return { timeline: last.timeline, endLsn: last.endLsn };
}

export const MANIFEST_CHECKSUM_ALGORITHMS = ['CRC32C', 'SHA224', 'SHA256', 'SHA384', 'SHA512', 'NONE'] as const;
export type ManifestChecksumAlgorithm = (typeof MANIFEST_CHECKSUM_ALGORITHMS)[number];

export interface ManifestFile {
  path: string;
  size: number;
  algorithm: ManifestChecksumAlgorithm;
  /** Lowercase hex, as the manifest writes it; undefined with NONE. */
  checksum: string | undefined;
}

export interface BackupManifest {
  files: ManifestFile[];
  walRanges: WalRange[];
  /** Why the manifest's own Manifest-Checksum does not hold; undefined when it does. */
  checksumProblem: string | undefined;
}

interface ManifestDocument {
  Files?: { Path?: string; 'Encoded-Path'?: string; Size?: number; 'Checksum-Algorithm'?: string; Checksum?: string }[];
  'WAL-Ranges'?: { Timeline?: number; 'Start-LSN'?: string; 'End-LSN'?: string }[];
  'Manifest-Checksum'?: string;
}

/**
 * Reads a whole backup_manifest and checks its Manifest-Checksum: the
 * SHA-256 of everything up to and including its second-to-last newline, as
 * pg_verifybackup checks it. `source` names it in errors.
 */
export function parseManifest(bytes: Buffer, source: string): BackupManifest {
  let document: ManifestDocument;
  try {
    document = JSON.parse(bytes.toString('utf8')) as ManifestDocument;
    if (!Array.isArray(document.Files) || !Array.isArray(document['WAL-Ranges'])) throw new Error('no Files or WAL-Ranges list');
  } catch (error) {
    throw new WalshipError(`${source} is not a backup manifest: ${(error as Error).message}`);
  }
  const files = document.Files.map((file): ManifestFile => {
    const path = file.Path ?? Buffer.from(file['Encoded-Path'] ?? '', 'hex').toString('utf8');
    const algorithm = MANIFEST_CHECKSUM_ALGORITHMS.find((known) => known === (file['Checksum-Algorithm'] ?? 'NONE').toUpperCase());
    if (!path || typeof file.Size !== 'number' || !algorithm) throw new WalshipError(`${source} is not a backup manifest: an entry of Files has no path, size or known checksum algorithm`);
    return { path, size: file.Size, algorithm, checksum: algorithm === 'NONE' ? undefined : file.Checksum?.toLowerCase() };
  });
  const walRanges = document['WAL-Ranges'].map((range) => {
    if (typeof range.Timeline !== 'number' || !range['Start-LSN'] || !range['End-LSN']) throw new WalshipError(`${source} is not a backup manifest: a WAL range lacks its timeline or LSNs`);
    return { timeline: range.Timeline, startLsn: parseLsn(range['Start-LSN']), endLsn: parseLsn(range['End-LSN']) };
  });
  return { files, walRanges, checksumProblem: manifestChecksumProblem(bytes, document['Manifest-Checksum']) };
}

function manifestChecksumProblem(bytes: Buffer, recorded: string | undefined): string | undefined {
  if (!recorded) return 'it has no Manifest-Checksum';
  const last = bytes.lastIndexOf(0x0a, bytes.length - 2);
  const covered = bytes.subarray(0, last + 1);
  const actual = process.getBuiltinModule('node:crypto').createHash('sha256').update(covered).digest('hex');
  return actual === recorded.toLowerCase() ? undefined : `its Manifest-Checksum ${recorded} does not match its content (SHA-256 ${actual})`;
}

/** A file's checksum in a manifest's algorithm, computed as its bytes go by; start() begins the next file. */
export interface FileChecksum {
  readonly algorithm: ManifestChecksumAlgorithm;
  start(): void;
  update(piece: Buffer): void;
  /** As the manifest writes it (CRC-32C: its four bytes in the server's byte order, little-endian). */
  finish(): string | undefined;
}

const CRC32C_POLYNOMIAL = 0x82f63b78;

export async function fileChecksum(algorithm: ManifestChecksumAlgorithm): Promise<FileChecksum> {
  if (algorithm === 'NONE') return { algorithm, start() {}, update() {}, finish: () => undefined };
  if (algorithm === 'CRC32C') {
    // WebAssembly, bundled as is into the single executable; one instance per stream, reused for each file.
    const { createCRC32 } = await import('hash-wasm');
    const crc = await createCRC32(CRC32C_POLYNOMIAL);
    return { algorithm, start: () => void crc.init(), update: (piece) => void crc.update(piece), finish: () => Buffer.from(crc.digest('binary')).reverse().toString('hex') };
  }
  const crypto = process.getBuiltinModule('node:crypto');
  let hash = crypto.createHash(algorithm.toLowerCase());
  return { algorithm, start: () => void (hash = crypto.createHash(algorithm.toLowerCase())), update: (piece) => void hash.update(piece), finish: () => hash.digest('hex') };
}

/**
 * Checks that every file the manifest lists exists in `directory` with its
 * size: the check walship makes when pg_verifybackup is not installed.
 * Returns the problems found, at most `limit` of them.
 */
export async function checkFilesAgainstManifest(directory: string, manifest: Buffer, limit = 10): Promise<string[]> {
  const { files, checksumProblem } = parseManifest(manifest, `backup_manifest in ${directory}`);
  const problems = checksumProblem ? [`backup_manifest: ${checksumProblem}`] : [];
  for (const file of files) {
    const problem = await lstat(join(directory, file.path)).then(
      (stats) => {
        if (!stats.isFile()) return `${file.path} is missing`;
        return stats.size === file.size ? undefined : `${file.path} has ${stats.size} bytes, the manifest says ${file.size}`;
      },
      (error: unknown) => (isMissing(error) ? `${file.path} is missing` : `${file.path} cannot be checked: ${describeError(error)}`),
    );
    if (problem) problems.push(problem);
    if (problems.length >= limit) break;
  }
  return problems;
}
