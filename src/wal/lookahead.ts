/**
 * Look-ahead archiving. PostgreSQL's archiver runs archive_command for one
 * file at a time. While walship pushes that file it also pushes the next
 * `.ready` files in parallel, and records each one once it is durable, so the
 * archiver's later calls for them return at once without touching storage.
 *
 * A record is only ever written after its upload is durable, and it names the
 * exact file (inode, size, mtime): a lost record costs one re-check against
 * storage, and a stale one never matches a different file.
 */
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../log/logger.ts';
import { describeError } from '../errors.ts';
import { parseWalFileName } from '../postgres/wal-name.ts';
import { forEachConcurrently } from '../util/concurrency.ts';

interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

async function identityOf(path: string): Promise<FileIdentity> {
  const { dev, ino, size, mtimeMs } = await stat(path);
  return { dev, ino, size, mtimeMs };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Records of WAL files uploaded ahead of the archiver, one small file each. */
export class ArchivedRecords {
  readonly directory: string;

  constructor(directory: string) {
    this.directory = directory;
  }

  async record(name: string, path: string): Promise<void> {
    const file = join(this.directory, name);
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(await identityOf(path)));
    await rename(temp, file);
  }

  /** True when `path` was uploaded ahead; the record is used up either way. */
  async consume(name: string, path: string): Promise<boolean> {
    const file = join(this.directory, name);
    let recorded: FileIdentity;
    try {
      recorded = JSON.parse(await readFile(file, 'utf8')) as FileIdentity;
    } catch {
      return false;
    }
    await unlink(file).catch(() => undefined);
    try {
      return sameIdentity(recorded, await identityOf(path));
    } catch {
      return false;
    }
  }

  async names(): Promise<string[]> {
    return (await readdir(this.directory)).filter((name) => !name.endsWith('.tmp'));
  }

  async forget(name: string): Promise<void> {
    await unlink(join(this.directory, name)).catch(() => undefined);
  }
}

/** The order PostgreSQL's archiver uses: timeline history files first, then oldest first. */
function archivingOrder(a: string, b: string): number {
  const aHistory = a.endsWith('.history');
  const bHistory = b.endsWith('.history');
  if (aHistory !== bHistory) return aHistory ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface LookAheadOptions {
  /** pg_wal: holds the WAL files and archive_status/. */
  walDirectory: string;
  /** The file the archiver asked for, pushed by the caller. */
  foreground: string;
  records: ArchivedRecords;
  /** Uploads in flight besides the foreground one. */
  concurrency: number;
  /** Files pushed ahead at most in one call. */
  limit: number;
  push(path: string): Promise<unknown>;
}

/**
 * Pushes up to `limit` other `.ready` files and records each durable one.
 * Failures are only logged: the archiver will ask for those files itself and
 * get a proper answer. Resolves to the number of files recorded.
 */
export async function pushAhead(options: LookAheadOptions): Promise<number> {
  const { walDirectory, foreground, records } = options;
  let statusNames: string[];
  try {
    statusNames = await readdir(join(walDirectory, 'archive_status'));
  } catch {
    return 0; // not a pg_wal directory: nothing to look ahead at
  }
  const ready = new Set(statusNames.filter((name) => name.endsWith('.ready')).map((name) => name.slice(0, -'.ready'.length)));
  const recorded = new Set(await records.names());
  // Records whose file is no longer waiting were used or made moot: drop them.
  for (const name of recorded) if (!ready.has(name)) await records.forget(name);

  const candidates = [...ready]
    .filter((name) => name !== foreground && !recorded.has(name) && parseWalFileName(name))
    .sort(archivingOrder)
    .slice(0, options.limit);
  let pushed = 0;
  await forEachConcurrently(candidates, options.concurrency, async (name) => {
    const path = join(walDirectory, name);
    try {
      await options.push(path);
      await records.record(name, path);
      pushed++;
    } catch (error) {
      log.info(`look-ahead upload of ${name} failed; the archiver will retry it: ${describeError(error)}`);
    }
  });
  if (pushed > 0) log.info('pushed ahead of the archiver', { files: pushed });
  return pushed;
}
