/**
 * PostgreSQL's archive_status directory, seen from look-ahead archiving: the
 * files waiting for the archiver (`<name>.ready`), and marking those the
 * pusher made durable as archived (`<name>.done`), which the archiver then
 * skips instead of running archive_command once per file.
 */
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMissing } from '../../fs/missing.ts';
import { parseWalFileName } from '../../postgres/wal-name.ts';
import type { ArchivedRecords } from './records.ts';

/** How long an archive_command waits for uploads in progress, to mark them done too. */
const MARK_DONE_WAIT_MS = 1_000;
/** How often it looks for uploads finished meanwhile: no hurry, the archiver is waiting anyway. */
const MARK_DONE_POLL_MS = 25;

/** The order PostgreSQL's archiver uses: timeline history files first, then oldest first. */
export function archivingOrder(a: string, b: string): number {
  const aHistory = a.endsWith('.history');
  const bHistory = b.endsWith('.history');
  if (aHistory !== bHistory) return aHistory ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Files waiting for the archiver, in its order. */
export async function readyFiles(walDirectory: string): Promise<string[]> {
  const statusNames = await readdir(join(walDirectory, 'archive_status'));
  return statusNames
    .filter((name) => name.endsWith('.ready'))
    .map((name) => name.slice(0, -'.ready'.length))
    .filter((name) => parseWalFileName(name) !== undefined)
    .sort(archivingOrder);
}

/** The files waiting for the archiver, in its order, and those of them with a record (records of the others are removed). */
export async function waitingFiles(records: ArchivedRecords, walDirectory: string): Promise<{ waiting: string[]; recorded: Set<string> }> {
  const waiting = await readyFiles(walDirectory);
  return { waiting, recorded: await records.recordedAmong(waiting) };
}

/**
 * Marks the recorded files other than `current` as archived (`.ready` to
 * `.done`), so the archiver skips them. The archiver checks that a file's
 * `.ready` is still there before archiving it, for this very reason. Called
 * from within the archiver's own archive_command, while it waits, so it never
 * races the archiver's rename. The newest waiting file is left to the
 * archiver, so pg_stat_archiver's last_archived_wal still ends up at the
 * newest file archived.
 *
 * While other uploads are in progress it waits for them and marks them too,
 * for at most `waitMs`: one archive_command then answers for a whole batch,
 * and the CPU time another walship start would take goes to compression
 * instead. Returns the names marked.
 */
export async function markPushedAheadDone(records: ArchivedRecords, walDirectory: string, current: string, waitMs = MARK_DONE_WAIT_MS): Promise<string[]> {
  const marked: string[] = [];
  const deadline = Date.now() + waitMs;
  for (;;) {
    marked.push(...(await markRecordedDone(records, walDirectory, current)));
    if (Date.now() >= deadline || !(await records.uploadInProgress())) return marked;
    await sleep(MARK_DONE_POLL_MS);
  }
}

async function markRecordedDone(records: ArchivedRecords, walDirectory: string, current: string): Promise<string[]> {
  const status = join(walDirectory, 'archive_status');
  const { waiting, recorded } = await waitingFiles(records, walDirectory);
  const newest = waiting.at(-1);
  const marked: string[] = [];
  for (const name of recorded) {
    if (name === current || name === newest || !(await records.vouchesFor(name, join(walDirectory, name)))) continue;
    try {
      await rename(join(status, `${name}.ready`), join(status, `${name}.done`));
      marked.push(name);
    } catch (error) {
      // Its .ready is gone already: the file was archived or removed meanwhile.
      if (!isMissing(error)) throw error;
    }
    await records.forget(name);
  }
  return marked;
}
