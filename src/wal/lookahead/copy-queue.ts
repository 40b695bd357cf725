/**
 * The WAL files on their way to the copies (WALSHIP_COPIES), kept in the
 * records directory of the archive they are durable in:
 *
 *   copies/.configured                               the copies' config files, as the last wal-push was configured
 *   copies/<hash of a copy's config file>/<name>     a marker: <name> is durable in the archive, the copy may lack it
 *   .forwarder.pid                                  pid of the forwarder (copy/forward.ts)
 *
 * wal-push and the pusher add a marker once a file is durable in the main
 * storage, and start the forwarder, which relays the file and removes the
 * marker. wal-push's configuration says which copies there are: the
 * forwarder follows `.configured`, not the settings it was started with, so
 * a copy added or removed reaches it without a restart. Markers survive the
 * forwarder's restart; they are written without fsync, so one lost in a
 * crash leaves its file to the next `walship copy`, which finds every file a
 * copy lacks from the listings.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { readStateFile, replaceFileQuickly } from '../../fs/durable.ts';
import { isMissing, removeLeftover } from '../../fs/missing.ts';
import { parseWalFileName } from '../../postgres/wal-name.ts';
import { PidFile } from '../background.ts';
import { COPY_QUEUES, FORWARDER_PID_FILE } from '../spool.ts';
import { archivingOrder } from './archive-status.ts';

const CONFIGURED_FILE = '.configured';

export class CopyQueue {
  readonly forwarder: PidFile;
  private readonly root: string;

  constructor(recordsDirectory: string) {
    this.root = join(recordsDirectory, COPY_QUEUES);
    this.forwarder = new PidFile(join(recordsDirectory, FORWARDER_PID_FILE));
  }

  /** Notes that `copies` are the copies now; true when they were not (a pusher started before may not have queued for them). */
  async configure(copies: readonly string[]): Promise<boolean> {
    const configured = JSON.stringify(copies);
    if ((await readStateFile(join(this.root, CONFIGURED_FILE))) === configured) return false;
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await replaceFileQuickly(join(this.root, CONFIGURED_FILE), configured);
    return true;
  }

  /** Queues `name` for each of `copies` (config files), and notes that they are the copies now. */
  async add(name: string, copies: readonly string[]): Promise<void> {
    await this.configure(copies);
    await Promise.all(copies.map(async (copy) => {
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

  /** The copies as the last wal-push was configured; none before any. */
  async configured(): Promise<string[]> {
    const text = await readStateFile(join(this.root, CONFIGURED_FILE));
    try {
      const copies: unknown = text === undefined ? [] : JSON.parse(text);
      return Array.isArray(copies) ? copies.filter((copy) => typeof copy === 'string') : [];
    } catch {
      return []; // damaged (a full disk): the next wal-push writes it again
    }
  }

  /** Removes the queues of copies no longer among `copies`; returns how many files each dropped. */
  async dropOthers(copies: readonly string[]): Promise<number> {
    const kept = new Set(copies.map((copy) => this.hashOf(copy)));
    let dropped = 0;
    for (const entry of await readdir(this.root).catch((error: unknown) => (isMissing(error) ? [] : Promise.reject(error)))) {
      if (entry.startsWith('.') || kept.has(entry)) continue;
      dropped += (await readdir(join(this.root, entry)).catch(() => [])).length;
      await rm(join(this.root, entry), { recursive: true, force: true });
    }
    return dropped;
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

  /** Whether any of the copies configured has a file waiting. */
  async anyWaiting(): Promise<boolean> {
    for (const copy of await this.configured()) if ((await this.waiting(copy)).length > 0) return true;
    return false;
  }

  private hashOf(copy: string): string {
    return crc32(copy).toString(16);
  }

  private directoryOf(copy: string): string {
    return join(this.root, this.hashOf(copy));
  }
}
