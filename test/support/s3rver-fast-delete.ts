/**
 * s3rver whose deletes cost the same whatever the folder holds. After each
 * deleted key, s3rver reads its whole folder to see whether it became empty
 * (a readdirSync per key): deleting 1,000 keys from a folder of 20,000, as
 * wal_005/ is, takes over a minute, so a benchmark would measure that scan.
 * This launcher removes empty folders with rmdir instead, which fails at
 * once on a folder that is not empty. The benchmarks use it; the tests run
 * s3rver as it is. Usage (as s3rver's own command, with the legacy OpenSSL
 * provider): node test/support/s3rver-fast-delete.ts PORT DIRECTORY BUCKET.
 * Relies on s3rver internals: its version is pinned in package.json.
 */
import { createRequire } from 'node:module';
import { rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem.js');

const [port, directory, bucket] = process.argv.slice(2);
const ignore = (codes: string[]) => (error: NodeJS.ErrnoException) => {
  if (!codes.includes(error.code ?? '')) throw error;
};

FilesystemStore.prototype.deleteObject = async function deleteObject(this: typeof FilesystemStore.prototype, name: string, key: string) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map((resource) => unlink(this.getResourcePath(name, key, resource)).catch(ignore(['ENOENT']))));
  const parts = key.split('/').slice(0, -1);
  for (; parts.length > 0; parts.pop()) {
    const removed = await rmdir(join(this.getBucketPath(name), ...parts)).then(() => true, ignore(['ENOTEMPTY', 'EEXIST', 'ENOENT']));
    if (!removed) break;
  }
};

await new S3rver({ address: '127.0.0.1', port: Number(port), directory, configureBuckets: [{ name: bucket }], silent: true }).run();
