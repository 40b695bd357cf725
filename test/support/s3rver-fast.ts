/**
 * s3rver whose deletes and listings cost the same whatever a folder holds,
 * for the benchmarks (the tests run s3rver as it is). s3rver reads a whole
 * folder after each deleted key to see whether it became empty, and for
 * each page of a listing walks the bucket from its start with a stat per
 * file: deleting 1,000 keys from a folder of 20,000 takes over a minute, and
 * listing 100,000 keys half an hour, so a benchmark would measure that.
 * Here a delete removes empty folders with rmdir, which fails at once on a
 * folder that is not empty; a flat listing (no delimiter) takes file types
 * from the directory entries, skips what sorts before the page's start
 * without looking at it, and stops at the page's end. It also keeps each
 * folder's sorted entries between pages: reading a folder of 100,000 keys
 * (300,000 files) again for each page of 1,000 made a listing quadratic
 * (229 s for 100,000 keys), and each listed key's metadata, as a real store
 * answers a page from its index: the cost of a page does not grow with the
 * bucket. A write or a delete through s3rver drops the kept entries of the
 * folders on its key's path, and the key's metadata. Files written into the bucket's
 * directory behind s3rver's back (the benchmarks' fill) must be there before
 * the first listing. The order and the answers are s3rver's own. Usage (as
 * s3rver's own command, with the legacy OpenSSL provider):
 * node test/support/s3rver-fast.ts PORT DIRECTORY BUCKET.
 * Relies on s3rver internals: its version is pinned in package.json.
 */
import { type Dirent, readdirSync, readFileSync, statSync } from 'node:fs';
import { rmdir, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem.js');
const S3Object = require('s3rver/lib/models/object.js');

const OBJECT_SUFFIX = '._S3rver_object';
const [port, directory, bucket] = process.argv.slice(2);
const ignore = (codes: string[]) => (error: NodeJS.ErrnoException) => {
  if (!codes.includes(error.code ?? '')) throw error;
};

/** Each folder's entries in readdir's sorted order, by path, as flat listings read them. */
const folderEntries = new Map<string, Dirent[]>();
/** Entries of the folder at `path`, kept from an earlier page; none for a folder a delete has removed. */
function entriesOf(path: string): Dirent[] {
  let entries = folderEntries.get(path);
  if (entries === undefined) {
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch (error) {
      ignore(['ENOENT'])(error as NodeJS.ErrnoException);
      entries = [];
    }
    folderEntries.set(path, entries);
  }
  return entries;
}

/** Drops the kept entries of the folders from the bucket's down to `key`'s, which a write to `key` may change, and the key's kept metadata. */
function dropKeptEntries(bucketPath: string, key: string): void {
  const parts = key.split('/').slice(0, -1);
  for (let depth = 0; depth <= parts.length; depth++) folderEntries.delete(join(bucketPath, ...parts.slice(0, depth)));
  listedMetadata.delete(join(bucketPath, key));
}

type Metadata = Record<string, unknown>;
/** s3rver's getMetadata() answer for each key a listing has returned, by the key's path, until the key is written or deleted. */
const listedMetadata = new Map<string, Metadata>();

/**
 * What s3rver's getMetadata() answers for `key` (its stored metadata, the
 * ETag from the .md5 file, the object file's mtime and size; undefined once
 * the object is gone), read with three synchronous calls and kept: s3rver
 * reads the three files with nine asynchronous calls for every key of every
 * page, which was most of a listing's time (10 of 14 s for 100,000 keys).
 * Where the .md5 file is missing s3rver makes it, so that case is its own.
 */
async function metadataOf(store: typeof FilesystemStore.prototype, name: string, key: string): Promise<Metadata | undefined> {
  const path = join(store.getBucketPath(name), key);
  const kept = listedMetadata.get(path);
  if (kept) return kept;
  const objectPath = store.getResourcePath(name, key, 'object');
  const read = <T>(file: () => T): T | undefined => {
    try {
      return file();
    } catch (error) {
      ignore(['ENOENT'])(error as NodeJS.ErrnoException);
      return undefined;
    }
  };
  const stats = read(() => statSync(objectPath));
  if (!stats) return undefined;
  const md5 = read(() => readFileSync(`${objectPath}.md5`, 'utf8'));
  if (md5 === undefined) return store.getMetadata(name, key).catch(ignore(['ENOENT']));
  const stored = read(() => JSON.parse(readFileSync(store.getResourcePath(name, key, 'metadata.json'), 'utf8')) as Metadata);
  const metadata = { ...stored, etag: JSON.stringify(md5), 'last-modified': stats.mtime.toUTCString(), 'content-length': stats.size };
  listedMetadata.set(path, metadata);
  return metadata;
}

// Every write of an object's files goes through putMetadata (putObject, multipart uploads, copies with new metadata) or copyObject.
const putMetadata = FilesystemStore.prototype.putMetadata;
FilesystemStore.prototype.putMetadata = async function keptEntriesDropped(this: typeof FilesystemStore.prototype, name: string, key: string, ...rest: unknown[]) {
  try {
    return await putMetadata.call(this, name, key, ...rest);
  } finally {
    dropKeptEntries(this.getBucketPath(name), key);
  }
};
const copyObject = FilesystemStore.prototype.copyObject;
FilesystemStore.prototype.copyObject = async function keptEntriesDropped(this: typeof FilesystemStore.prototype, sourceName: string, sourceKey: string, name: string, key: string, ...rest: unknown[]) {
  try {
    return await copyObject.call(this, sourceName, sourceKey, name, key, ...rest);
  } finally {
    dropKeptEntries(this.getBucketPath(name), key);
  }
};

FilesystemStore.prototype.deleteObject = async function deleteObject(this: typeof FilesystemStore.prototype, name: string, key: string) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map((resource) => unlink(this.getResourcePath(name, key, resource)).catch(ignore(['ENOENT']))));
  const parts = key.split('/').slice(0, -1);
  for (; parts.length > 0; parts.pop()) {
    const removed = await rmdir(join(this.getBucketPath(name), ...parts)).then(() => true, ignore(['ENOTEMPTY', 'EEXIST', 'ENOENT']));
    if (!removed) break;
  }
  dropKeptEntries(this.getBucketPath(name), key);
};

interface ListOptions {
  delimiter?: string;
  startAfter?: string;
  prefix?: string;
  maxKeys?: number;
}

const listObjects = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function flatListing(this: typeof FilesystemStore.prototype, name: string, options: ListOptions) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  if (delimiter !== '' || process.platform === 'win32') return listObjects.call(this, name, options);
  const keys: string[] = [];
  let isTruncated = false;
  // The walk s3rver does (entries in readdir's sorted order, folders before their files only as names sort), pruned.
  const visit = (path: string, folder: string): boolean => {
    const entries = entriesOf(path);
    // Names sort as s3rver's walk meets them; those sorting before the start's name in this folder hold nothing after it.
    const startName = startAfter.startsWith(folder) ? startAfter.slice(folder.length).split('/')[0]! : '';
    for (let index = startName === '' ? 0 : firstNotBefore(entries, startName); index < entries.length; index++) {
      const entry = entries[index]!;
      if (entry.isDirectory()) {
        const subfolder = `${folder}${entry.name}/`;
        if (!subfolder.startsWith(prefix) && !prefix.startsWith(subfolder)) continue;
        if (subfolder < startAfter && !startAfter.startsWith(subfolder)) continue;
        if (!visit(join(path, entry.name), subfolder)) return false;
      } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
        const key = folder + entry.name.slice(0, -OBJECT_SUFFIX.length);
        if (key <= startAfter || !key.startsWith(prefix)) continue;
        if (keys.length === maxKeys) {
          isTruncated = true;
          return false;
        }
        keys.push(key);
      }
    }
    return true;
  };
  visit(this.getBucketPath(name), '');
  const metadata = await Promise.all(keys.map((key) => metadataOf(this, name, key)));
  return {
    objects: keys.flatMap((key, index) => (metadata[index] === undefined ? [] : [new S3Object(name, key, null, metadata[index])])),
    commonPrefixes: [],
    isTruncated,
  };
};

/** The index of the first entry whose name is not before `name` (entries are sorted by name). */
function firstNotBefore(entries: { name: string }[], name: string): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (entries[middle]!.name < name) low = middle + 1;
    else high = middle;
  }
  return low;
}

await new S3rver({ address: '127.0.0.1', port: Number(port), directory, configureBuckets: [{ name: bucket }], silent: true }).run();
