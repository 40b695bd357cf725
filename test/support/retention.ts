/**
 * The retention story the end-to-end tests share, on any storage: three
 * backups of a real PostgreSQL 15 with writes between them, then
 * `delete retain 2`. The dry run changes nothing; with --confirm exactly the
 * oldest backup and the WAL before the second backup's start are gone; a
 * point-in-time restore from the oldest kept backup to a time between the
 * second and third backups gives exactly the rows of that time, and LATEST
 * still restores to the end.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ATTEMPT_PREFIX, backupPrefix, classifyKey, sentinelKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { segmentNumberOfName } from '../../src/postgres/wal-name.ts';
import { libpq } from './libpq.ts';
import { postgresBin, walshipBinary } from './paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from './postgres.ts';
import { run } from './processes.ts';
import { openConfigured } from './storage.ts';

export interface RetentionBackend {
  name: string;
  /** Storage settings for a fresh archive, and how to throw it away. */
  start(): Promise<{ settings: Record<string, string>; stop(): Promise<void> | void }>;
}

const SEGMENT_SIZE = 1 << 20;
const PHASES = ['first', 'second', 'between', 'after-target', 'last'];

/** Every object under the archive's prefix, but the record of each attempt (a confirmed delete leaves its own): key and size. */
export async function listing(settings: Record<string, string>): Promise<Map<string, number>> {
  const storage = await openConfigured(new Config(settings));
  const objects = new Map<string, number>();
  for await (const object of storage.list('')) if (!object.key.startsWith(ATTEMPT_PREFIX)) objects.set(object.key, object.size);
  return objects;
}

interface Listed {
  backup_name: string;
  start_lsn: string;
}

export function retentionScenario(backend: RetentionBackend): void {
  describe(`delete retain 2 on ${backend.name}, with a real PostgreSQL 15`, () => {
    let storage: Awaited<ReturnType<RetentionBackend['start']>>;
    let primary: PostgresCluster;
    let env: Record<string, string>;
    let backups: Listed[];
    let target: string;
    const cleanups: (() => Promise<void> | void)[] = [];

    const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(primary) } });
    const insert = (phase: string) => primary.sql(`INSERT INTO marker (phase) SELECT '${phase}' FROM generate_series(1, 100)`);
    const pushBackup = async () => {
      const pushed = await walship(['backup-push']);
      assert.equal(pushed.code, 0, pushed.stderr);
    };

    /** backup-fetch into a new directory and start it; returns the rows of each phase. */
    async function restoredPhases(fetchArgs: string[]): Promise<string[]> {
      const root = makePostgresOwnedDirectory('walship-retention-restore-');
      cleanups.push(() => rmSync(root, { recursive: true, force: true }));
      const dataDir = join(root, 'data');
      const fetched = await walship(['backup-fetch', dataDir, ...fetchArgs]);
      assert.equal(fetched.code, 0, fetched.stderr);
      const restored = await PostgresCluster.adopt(dataDir, root, { settings: { archive_mode: 'off' } });
      cleanups.push(() => restored.destroy());
      await restored.start();
      await restored.waitPromoted();
      return Promise.all(PHASES.map((phase) => restored.sql(`SELECT count(*) FROM marker WHERE phase = '${phase}'`)));
    }

    before(async () => {
      storage = await backend.start();
      env = { ...storage.settings, WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
      primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
      await primary.start();
      await primary.sql('CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)');
      await insert('first');
      await primary.switchAndWaitArchived();
      await pushBackup();
      await insert('second');
      await primary.switchAndWaitArchived();
      await pushBackup();
      await insert('between');
      target = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
      await insert('after-target');
      await primary.switchAndWaitArchived();
      await pushBackup();
      await insert('last');
      await primary.switchAndWaitArchived();
      backups = JSON.parse((await walship(['backup-list', '--json'])).stdout) as Listed[];
      assert.equal(backups.length, 3);
    });

    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
      await primary?.destroy();
      await storage?.stop();
    });

    it('prints the plan and deletes nothing without --confirm', async () => {
      const before = await listing(env);
      const planned = await walship(['delete', 'retain', '2']);
      assert.equal(planned.code, 0, planned.stderr);
      assert.match(planned.stdout, new RegExp(`^  delete  ${backups[0]!.backup_name}  .*kept by no rule$`, 'm'));
      assert.match(planned.stdout, new RegExp(`^  keep    ${backups[2]!.backup_name}  .*newest 2, newest complete backup$`, 'm'));
      assert.match(planned.stdout, /^  delete  timeline 1 {2}\S+ \.\. \S+ {2}\d+ segments? {2}/m);
      assert.match(planned.stdout, /^Dry run: nothing was deleted\./m);
      assert.deepEqual(await listing(env), before);
    });

    it('with --confirm deletes exactly the oldest backup and the WAL before the second backup\'s start', async () => {
      const before = await listing(env);
      const firstKept = segmentNumberOfLsn(parseLsn(backups[1]!.start_lsn), SEGMENT_SIZE);
      const expectedGone = [...before.keys()].filter((key) => {
        if (key === sentinelKey(backups[0]!.backup_name) || key.startsWith(backupPrefix(backups[0]!.backup_name))) return true;
        const kind = classifyKey(key);
        return kind.kind === 'wal' && kind.file.segment !== undefined && segmentNumberOfName(kind.file.segment, SEGMENT_SIZE) < firstKept;
      });
      assert.ok(expectedGone.filter((key) => key.startsWith('wal_005/')).length >= 2, `expected old WAL to delete: ${expectedGone.join(', ')}`);

      const deleted = await walship(['delete', 'retain', '2', '--confirm']);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.match(deleted.stdout, new RegExp(`^Deleted 1 backup, 1 backup folder and ${expectedGone.filter((key) => key.startsWith('wal_005/')).length} WAL files: `, 'm'));
      const remaining = await listing(env);
      assert.deepEqual([...remaining.keys()].sort(), [...before.keys()].filter((key) => !expectedGone.includes(key)).sort());
      const listed = JSON.parse((await walship(['backup-list', '--json'])).stdout) as Listed[];
      assert.deepEqual(listed.map((backup) => backup.backup_name), backups.slice(1).map((backup) => backup.backup_name));
      // Run again: nothing more to do.
      const again = await walship(['delete', 'retain', '2', '--confirm']);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await listing(env), remaining);
    });

    it('restores the oldest kept backup to a time between the second and third backups, and LATEST to the end', async () => {
      assert.deepEqual(await restoredPhases([backups[1]!.backup_name, '--recovery-target-time', target, '--recovery-target-action', 'promote']), ['100', '100', '100', '0', '0']);
      assert.deepEqual(await restoredPhases(['LATEST']), ['100', '100', '100', '100', '100']);
    });
  });
}
