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

interface ManifestFile {
  Path?: string;
  'Encoded-Path'?: string;
  Size: number;
}

/**
 * Checks that every file the manifest lists exists in `directory` with its
 * size: the check walship makes when pg_verifybackup is not installed.
 * Returns the problems found, at most `limit` of them.
 */
export async function checkFilesAgainstManifest(directory: string, manifestText: string, limit = 10): Promise<string[]> {
  let files: ManifestFile[];
  try {
    files = (JSON.parse(manifestText) as { Files: ManifestFile[] }).Files;
    if (!Array.isArray(files)) throw new Error('no Files list');
  } catch (error) {
    throw new WalshipError(`backup_manifest in ${directory} is unreadable: ${(error as Error).message}`);
  }
  const problems: string[] = [];
  for (const file of files) {
    const path = file.Path ?? Buffer.from(file['Encoded-Path'] ?? '', 'hex').toString('utf8');
    const problem = await lstat(join(directory, path)).then(
      (stats) => {
        if (!stats.isFile()) return `${path} is missing`;
        return stats.size === file.Size ? undefined : `${path} has ${stats.size} bytes, the manifest says ${file.Size}`;
      },
      (error: unknown) => (isMissing(error) ? `${path} is missing` : `${path} cannot be checked: ${describeError(error)}`),
    );
    if (problem) problems.push(problem);
    if (problems.length >= limit) break;
  }
  return problems;
}
