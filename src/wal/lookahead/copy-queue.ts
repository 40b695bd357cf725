/**
 * The WAL files on their way to the copies (WALSHIP_COPIES), kept in the
 * records directory of the archive they are durable in:
 *
 *   copies/<hash of the copy's config file>/<name>   a marker: <name> is durable in the archive, the copy may lack it
 *   .forwarder.pid                                  pid of the forwarder (copy/forward.ts)
 *
 * wal-push and the pusher add a marker once a file is durable in the main
 * storage, and start the forwarder, which relays the file and removes the
 * marker. Markers survive the forwarder's restart; they are written without
 * fsync, so one lost in a crash leaves its file to the next `walship copy`,
 * which finds every file a copy lacks from the listings.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { isMissing, removeLeftover } from '../../fs/missing.ts';
import { parseWalFileName } from '../../postgres/wal-name.ts';
import { PidFile } from '../background.ts';
import { COPY_QUEUES, FORWARDER_PID_FILE } from '../spool.ts';
import { archivingOrder } from './archive-status.ts';

export class CopyQueue {
  readonly forwarder: PidFile;
  readonly copies: readonly string[];
  private readonly root: string;

  /** The queues of the copies whose config files are `copies`, in `recordsDirectory`. */
  constructor(recordsDirectory: string, copies: readonly string[]) {
    this.root = join(recordsDirectory, COPY_QUEUES);
    this.copies = copies;
    this.forwarder = new PidFile(join(recordsDirectory, FORWARDER_PID_FILE));
  }

  /** Queues `name` for every copy. */
  async add(name: string): Promise<void> {
    await Promise.all(this.copies.map(async (copy) => {
      const marker = join(this.directoryOf(copy), name);
      try {
        await writeFile(marker, '');
      } catch (error) {
        if (!isMissing(error)) throw error;
        await mkdir(this.directoryOf(copy), { recursive: true, mode: 0o700 });
        await writeFile(marker, '');
      }
    }));
  }

  /** The files waiting for `copy`, in PostgreSQL's archiving order (history files first, then oldest first). */
  async waiting(copy: string): Promise<string[]> {
    try {
      return (await readdir(this.directoryOf(copy))).filter((name) => parseWalFileName(name) !== undefined).sort(archivingOrder);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  async done(copy: string, name: string): Promise<void> {
    await removeLeftover(join(this.directoryOf(copy), name));
  }

  /** Whether any copy has a file waiting. */
  async anyWaiting(): Promise<boolean> {
    for (const copy of this.copies) if ((await this.waiting(copy)).length > 0) return true;
    return false;
  }

  private directoryOf(copy: string): string {
    return join(this.root, crc32(copy).toString(16));
  }
}
