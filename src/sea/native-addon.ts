/**
 * Inside the single executable, native addons (zstd-napi's, sodium-native's, lzma-native's)
 * are embedded assets. Each is written once to a private cache file (named by
 * its hash) and loaded from there. Any failure (no writable cache, a noexec
 * mount) throws: the caller falls back (zstd to node:zlib) or says why it
 * cannot go on (encryption, reading .lzma objects).
 */
import { existsSync, lstatSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRawAsset, isSea } from 'node:sea';
import { replaceFileQuicklySync } from '../fs/durable.ts';
import { makeDirectoriesSync } from '../fs/directories.ts';

/** Each embedded addon's asset name and the start of its SHA-256, set by scripts/build.ts. */
declare const WALSHIP_ADDON_HASHES: Record<string, string>;

/** Where addons may be cached, best first. */
function cacheCandidates(): string[] {
  const { WALSHIP_CACHE_DIR, XDG_CACHE_HOME, HOME } = process.env;
  return [
    WALSHIP_CACHE_DIR,
    XDG_CACHE_HOME && join(XDG_CACHE_HOME, 'walship'),
    join(HOME || homedir(), '.cache', 'walship'),
    join(tmpdir(), `walship-${process.getuid?.() ?? 'user'}`),
  ].filter((candidate): candidate is string => Boolean(candidate));
}

/** Creates `directory` if needed and checks that only this user can write to it. */
function isPrivateDirectory(directory: string): boolean {
  try {
    makeDirectoriesSync(directory, 0o700);
    const stats = lstatSync(directory);
    // A directory someone else controls could swap the library under us.
    return stats.isDirectory() && stats.uid === process.getuid?.() && (stats.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The exports of the embedded addon `asset` ('zstd-napi.node'), cached as <name>-<hash>.node. */
export function loadAddonFromAsset(asset: string): unknown {
  if (!isSea()) throw new Error('not running as a single executable');
  const bytes = getRawAsset(asset);
  const candidates = cacheCandidates();
  const directory = candidates.find(isPrivateDirectory);
  if (!directory) throw new Error(`no private, writable cache directory among ${candidates.join(', ')}`);
  const path = join(directory, `${asset.replace(/\.node$/, '')}-${WALSHIP_ADDON_HASHES[asset]}.node`);
  if (!existsSync(path) || statSync(path).size !== bytes.byteLength) replaceFileQuicklySync(path, new Uint8Array(bytes), 0o700);
  const module = { exports: {} as unknown };
  process.dlopen(module, path);
  return module.exports;
}
