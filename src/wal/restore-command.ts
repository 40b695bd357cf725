/**
 * The restore_command walship writes: a shell fast path, then wal-fetch.
 * PostgreSQL runs restore_command once per segment, serially, between the
 * redo of one segment and the next; a walship start costs tens of
 * milliseconds there. When the prefetcher has the segment ready, /bin/sh
 * hands it over with a hard link, and only a miss starts walship:
 *
 *   { read -r pid; read -r dir; read -r start; } < postmaster.pid     this server run
 *   [ "%p" != "pg_wal/%f" ]                                           not pg_rewind's restore
 *   ln <archive area>/<pid>-<start>/%f %p && rm <that file>; exit 0    a hit
 *   exec walship ... wal-fetch %f %p                                   anything else
 *
 * It is as safe as wal-fetch's own use of the area (prefetch.ts): only a
 * file under its final name, which appears by rename once complete and
 * verified; of exactly the requested name, so of the requested timeline; in
 * the area of this archive (its key is written in) and this server run (read
 * from postmaster.pid), so never a stale one. ln never copies: across file
 * systems, or when %p exists, it fails and wal-fetch runs, so %p is never
 * partial. Every failure and every miss ends in wal-fetch, whose exit codes
 * (0, 74 missing, other errors) are restore_command's.
 */
import { join } from 'node:path';
import { shellQuote } from '../postgres/recovery-settings.ts';
import { archiveKey } from './prefetch.ts';

/** `walCommand` (walship ... wal-fetch, without %f %p) behind the fast path over the prefetch areas of `storageIdentity` under `prefetchRoot`. */
export function restoreCommandWithFastPath(walCommand: string[], prefetchRoot: string, storageIdentity: string): string {
  const areas = `${join(prefetchRoot, archiveKey(storageIdentity))}/`;
  return [
    `d=${shellQuote([areas])}`,
    '{ read -r p; read -r x; read -r s; } 2>/dev/null < postmaster.pid',
    '[ "%p" != "pg_wal/%f" ] && ln "$d$p-$s/%f" "%p" 2>/dev/null && { rm -f "$d$p-$s/%f"; exit 0; }',
    `exec ${shellQuote(walCommand)} %f %p`,
  ].join('; ');
}
