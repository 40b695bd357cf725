/**
 * Storage on a local or mounted file system (WALG_FILE_PREFIX). Objects are
 * plain files under the prefix; their metadata lives in a parallel hidden
 * tree (.walship/metadata/<key>.json) so the main tree stays WAL-G's layout.
 */
import { createReadStream, type Dir, opendirSync, statSync } from 'node:fs';
import { readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { ConfigError, NotFoundError } from '../errors.ts';
import { ensureDirectoryDurable, fsyncDirectory, StagedFile, sweepAbandonedTempFiles } from '../fs/durable.ts';
import { isMissing } from '../fs/missing.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { assertSafeKey, type ObjectInfo, type ObjectMetadata, type PutOptions, type Storage, type StorageCapabilities, type StoredObject } from './storage.ts';
import { makeDirectories } from '../fs/directories.ts';
import { crc32Hex } from '../util/crc32.ts';

const METADATA_TREE = '.walship/metadata';
/** The entry of a metadata file that records the CRC-32 of the object's bytes: the backend's own, never part of the object's metadata. */
const STORED_CRC32 = 'stored_crc32';
/** Temp files live apart from the objects, where abandoned ones are cheap to find. */
const TEMP_DIRECTORY = '.walship/tmp';
const ABANDONED_TEMP_AGE_MS = 10 * 60_000;
/** Directory entries read at once, and objects listed between two turns of the event loop. */
const SYNC_BATCH = 1000;
/**
 * Names sorted together as one run while a directory is read. Fewer, longer
 * runs merge faster (a name's way through the merge's heap costs more than
 * through a sort), but the names of a run outlive a young-generation
 * collection: listing a million objects took about 0.4 s less CPU with runs
 * of 16,384 than of 4,096 at the same peak RSS, and 30-60 MB more RSS with
 * runs of 65,536 (scripts/bench/README.md, retention).
 */
const RUN_NAMES = 16_384;
const UNLINK_CONCURRENCY = 16;
const READ_PIECE_BYTES = 1 << 20;

export class FileStorage implements Storage {
  readonly location: string;
  readonly capabilities: StorageCapabilities = { localFileSystem: true, conditionalCreate: 'enforced', listingIncludesMetadata: false, batchDelete: 'parallel' };
  private readonly root: string;
  private tempDirectory: Promise<string> | undefined;

  private constructor(root: string) {
    this.root = root;
    this.location = `file://${root}`;
  }

  /** Opens the archive at `root`, which must be an existing directory. */
  static async open(root: string, settingName = 'WALG_FILE_PREFIX'): Promise<FileStorage> {
    const stats = await stat(root).catch((error: unknown) => {
      if (isMissing(error)) {
        throw new ConfigError(`${settingName}=${root} does not exist: create the directory (writable by the PostgreSQL OS user) or fix the path`);
      }
      throw new ConfigError(`${settingName}=${root} cannot be used: ${(error as Error).message}`);
    });
    if (!stats.isDirectory()) throw new ConfigError(`${settingName}=${root} is not a directory`);
    return new FileStorage(root.replace(/\/+$/, '') || '/');
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return join(this.root, key);
  }

  private metadataPathOf(key: string): string {
    assertSafeKey(key);
    return join(this.root, METADATA_TREE, `${key}.json`);
  }

  /** The temp directory, created and swept of abandoned files once per process. */
  private temporaries(): Promise<string> {
    this.tempDirectory ??= (async () => {
      const directory = join(this.root, TEMP_DIRECTORY);
      await makeDirectories(directory, 0o750);
      await sweepAbandonedTempFiles(directory, ABANDONED_TEMP_AGE_MS);
      return directory;
    })();
    return this.tempDirectory;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    const metadataPath = this.metadataPathOf(key);
    const tempDirectory = await this.temporaries();
    await ensureDirectoryDurable(dirname(path));
    const written = crc32Of(body);
    const stagedData = StagedFile.fill(path, (handle) => handle.writeFile(written.bytes), { mode: 0o640, tempDirectory });
    const stageMetadata = async () => {
      const { metadata } = options;
      if (!metadata || Object.keys(metadata).length === 0) return undefined;
      await ensureDirectoryDurable(dirname(metadataPath));
      // It records the bytes' CRC-32, so it is written once they have all gone by (while they are fsynced), or not at all.
      const storedCrc32 = await Promise.race([written.crc32, stagedData.then(() => written.crc32)]);
      return StagedFile.write(metadataPath, Readable.from([JSON.stringify({ ...metadata, [STORED_CRC32]: storedCrc32 })]), { mode: 0o640, tempDirectory });
    };
    const [data, metadata] = await Promise.allSettled([stagedData, stageMetadata()]);
    try {
      if (data.status === 'rejected') throw data.reason;
      if (metadata.status === 'rejected') throw metadata.reason;
      // The object is the commit point; its metadata follows. A crash in between
      // leaves an object without metadata, which readers treat like a WAL-G object.
      await data.value.commit(options.createOnly);
      await metadata.value?.commit();
    } finally {
      for (const staged of [data, metadata]) if (staged.status === 'fulfilled') await staged.value?.discard();
    }
    await Promise.all([fsyncDirectory(dirname(path)), metadata.value && fsyncDirectory(dirname(metadataPath))]);
  }

  async get(key: string): Promise<StoredObject> {
    const path = this.pathOf(key);
    const info = await this.describe(key);
    if (!info) throw new NotFoundError(`${key} is not in ${this.location}`);
    // 1 MiB pieces, not the default 64 KiB: a relayed or fetched object passes its stages and TLS in 16 times fewer steps.
    const body = createReadStream(path, { highWaterMark: READ_PIECE_BYTES });
    // Surface open errors (permissions, a file removed meanwhile) before the caller commits to reading.
    await new Promise<void>((resolve, reject) => {
      body.once('open', () => resolve());
      body.once('error', (error) => reject(isMissing(error) ? new NotFoundError(`${key} is not in ${this.location}`) : error));
    });
    const { metadata, storedCrc32, ...objectInfo } = info;
    return { info: objectInfo, metadata, body, ...(storedCrc32 !== undefined && { storedCrc32 }) };
  }

  async head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined> {
    const found = await this.describe(key);
    if (!found) return undefined;
    const { storedCrc32: _, ...info } = found;
    return info;
  }

  /** head(), and the CRC-32 of the bytes where the metadata file records it. */
  private async describe(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata; storedCrc32?: string }) | undefined> {
    let stats;
    try {
      stats = await stat(this.pathOf(key));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    if (!stats.isFile()) return undefined;
    const { [STORED_CRC32]: storedCrc32, ...metadata } = await this.readMetadata(key);
    return { key, size: stats.size, lastModified: stats.mtime, metadata, ...(storedCrc32 !== undefined && { storedCrc32 }) };
  }

  private async readMetadata(key: string): Promise<ObjectMetadata> {
    try {
      return JSON.parse(await readFile(this.metadataPathOf(key), 'utf8')) as ObjectMetadata;
    } catch (error) {
      if (isMissing(error)) return {};
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    let listed = 0;
    for (const object of this.walk(slash >= 0 ? prefix.slice(0, slash) : '', prefix)) {
      yield object;
      if (++listed % SYNC_BATCH === 0) await nextTurn();
    }
  }

  /** The first object the walk finds, reading names in the directory's own order: a few entries, not a whole folder. */
  async holdsAny(prefix: string): Promise<boolean> {
    const slash = prefix.lastIndexOf('/');
    const objects = this.walk(slash >= 0 ? prefix.slice(0, slash) : '', prefix, unorderedVisibleNames);
    try {
      return !objects.next().done;
    } finally {
      objects.return(undefined);
    }
  }

  /**
   * The objects under `directoryKey` whose keys start with `prefix`, in key
   * order (in `names`'s order), with synchronous calls, list() being the one async generator: on
   * the million files of a large wal_005/, a promise per entry takes ten
   * times as long, and each level of async generators adds a third of a
   * second. Reading such a folder holds the event loop for about a second.
   */
  private *walk(directoryKey: string, prefix: string, names: (directory: string) => Iterable<string> = visibleNames): Generator<ObjectInfo> {
    const directory = directoryKey ? this.pathOf(directoryKey) : this.root;
    for (const name of names(directory)) {
      const key = directoryKey ? `${directoryKey}/${name}` : name;
      if (!key.startsWith(prefix) && !prefix.startsWith(`${key}/`)) continue;
      const stats = statSync(`${directory}/${name}`, { throwIfNoEntry: false });
      if (stats?.isDirectory()) yield* this.walk(key, prefix, names);
      // Stats.mtime makes the same Date, but redefines a property of each Stats object to cache it.
      else if (stats?.isFile() && key.startsWith(prefix)) yield { key, size: stats.size, lastModified: new Date(stats.mtimeMs) };
    }
  }

  async delete(key: string): Promise<void> {
    await this.deleteMany([key]);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    // Metadata first: a crash in between leaves an object without metadata (read like a WAL-G object), never metadata without its object.
    await removeDurably(keys.map((key) => this.metadataPathOf(key)));
    await removeDurably(keys.map((key) => this.pathOf(key)));
    await this.removeEmptiedFolders(keys);
  }

  /**
   * Removes the folders the keys leave empty (a deleted backup's), in both
   * trees, but never a top-level one (wal_005/, basebackups_005/): a
   * wal-push or backup-push may be about to create an object there.
   */
  private async removeEmptiedFolders(keys: readonly string[]): Promise<void> {
    const folders = new Set(keys.map((key) => dirname(key)).filter((folder) => folder.includes('/')));
    for (const folder of folders) {
      for (let current = folder; current.includes('/'); current = dirname(current)) {
        const removed = await Promise.all([join(this.root, current), join(this.root, METADATA_TREE, current)].map((path) => rmdir(path).then(() => true, (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST' || isMissing(error)) return false;
          throw error;
        })));
        if (!removed.some(Boolean)) break;
      }
    }
  }
}

/**
 * The names in `directory` but hidden ones (temp files, walship's metadata
 * tree), in order; none when it does not exist. All read before the first is
 * returned, so objects deleted meanwhile cannot make the reading skip any,
 * and held as sorted runs of names joined by NUL, which no file name holds:
 * as a million separate strings they take twice the memory (the plan of a
 * million-segment archive peaked at 250 MB of RSS, not 180).
 */
function visibleNames(directory: string): Iterable<string> {
  const runs: string[] = [];
  let run: string[] = [];
  for (const name of unorderedVisibleNames(directory)) {
    run.push(name);
    if (run.length === RUN_NAMES) {
      runs.push(run.sort().join('\0'));
      run = [];
    }
  }
  if (runs.length === 0) return run.sort();
  if (run.length > 0) runs.push(run.sort().join('\0'));
  return mergedRuns(runs);
}

/** The names in `directory` but hidden ones, as the directory gives them, read as they are asked for. */
function* unorderedVisibleNames(directory: string): Generator<string> {
  let handle: Dir;
  try {
    handle = opendirSync(directory, { bufferSize: SYNC_BATCH });
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  try {
    for (let entry = handle.readSync(); entry; entry = handle.readSync()) if (!entry.name.startsWith('.')) yield entry.name;
  } finally {
    handle.closeSync();
  }
}

/** A run's next name, from `start`. */
interface RunCursor {
  run: string;
  name: string;
  start: number;
}

/** Moves the cursor to its run's next name; false at the run's end. */
function advance(cursor: RunCursor): boolean {
  if (cursor.start > cursor.run.length) return false;
  const end = cursor.run.indexOf('\0', cursor.start);
  const stop = end < 0 ? cursor.run.length : end;
  cursor.name = cursor.run.slice(cursor.start, stop);
  cursor.start = stop + 1;
  return true;
}

/** The names of sorted runs in order, through a heap of the runs' next names. */
function* mergedRuns(runs: string[]): Generator<string> {
  const heap: RunCursor[] = runs.map((run) => ({ run, name: '', start: 0 })).filter(advance);
  /** Puts `cursor` at `index` or below it, moving smaller children up. */
  const settle = (cursor: RunCursor, index: number) => {
    for (let child = 2 * index + 1; child < heap.length; child = 2 * index + 1) {
      if (child + 1 < heap.length && heap[child + 1]!.name < heap[child]!.name) child++;
      if (cursor.name <= heap[child]!.name) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = cursor;
  };
  for (let index = (heap.length >> 1) - 1; index >= 0; index--) settle(heap[index]!, index);
  while (heap.length > 0) {
    const first = heap[0]!;
    yield first.name;
    if (advance(first)) settle(first, 0);
    else {
      const last = heap.pop()!;
      if (heap.length > 0) settle(last, 0);
    }
  }
}

/** `body`'s bytes as they are read, and their CRC-32 (lowercase hex) once all have been: it stays pending if the reading stops early. */
function crc32Of(body: Readable): { bytes: AsyncIterable<Buffer>; crc32: Promise<string> } {
  let resolve!: (checksum: string) => void;
  const crc32Promise = new Promise<string>((settle) => (resolve = settle));
  async function* bytes(): AsyncGenerator<Buffer> {
    let checksum = 0;
    for await (const chunk of body) {
      checksum = crc32(chunk as Buffer, checksum);
      yield chunk as Buffer;
    }
    resolve(crc32Hex(checksum));
  }
  return { bytes: bytes(), crc32: crc32Promise };
}

/** Lets timers and I/O run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Unlinks `paths` (missing ones are no error), then fsyncs each directory once, so the removals are durable before the caller goes on. */
async function removeDurably(paths: string[]): Promise<void> {
  const directories = new Set<string>();
  await forEachConcurrently(paths, UNLINK_CONCURRENCY, async (path) => {
    try {
      await unlink(path);
      directories.add(dirname(path));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  });
  await forEachConcurrently(directories, UNLINK_CONCURRENCY, fsyncDirectory);
}
