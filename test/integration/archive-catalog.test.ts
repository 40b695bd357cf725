// The archive catalog over what a real PostgreSQL 15 archives through walship:
// a cluster with 1 MiB segments promoted twice (timelines 1, 2, 3), its own
// history files, and a backup on timeline 3.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { ArchiveCatalog } from '../../src/archive/catalog.ts';
import { parseHistory } from '../../src/archive/timelines.ts';
import { parseLsn, segmentNumberOfLsn } from '../../src/postgres/lsn.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

const SEGMENT_SIZE = 1 << 20;

describe('the archive catalog of a cluster promoted twice', () => {
  let archive: string;
  let cluster: PostgresCluster;
  let env: Record<string, string>;
  /** A position on timeline 1, in a segment archived before the first promotion. */
  let fromLsn: bigint;
  /** A position on timeline 3, in a segment archived at the end. */
  let toLsn: bigint;

  const walship = (args: string[]) => run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...libpq(cluster) } });

  /** Ends the current timeline: a clean stop, then archive recovery to the end of the WAL, which promotes. */
  async function promote(): Promise<void> {
    await cluster.stop('fast');
    cluster.writeFile('recovery.signal', '');
    await cluster.start();
    await cluster.waitPromoted();
  }

  async function writeAndArchive(rows: number): Promise<void> {
    await cluster.sql(`INSERT INTO marker SELECT g FROM generate_series(1, ${rows}) g`);
    await cluster.switchAndWaitArchived();
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    env = { WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', PATH: `${postgresBin}:${process.env.PATH}` };
    cluster = await PostgresCluster.init({
      env,
      walSegmentSizeMiB: 1,
      settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p`, restore_command: `${walshipBinary} wal-fetch %f %p` },
    });
    await cluster.start();
    await cluster.sql('CREATE TABLE marker (id int)');
    await cluster.switchAndWaitArchived();
    fromLsn = parseLsn(await cluster.sql('SELECT pg_current_wal_lsn()'));
    await writeAndArchive(20_000);
    await writeAndArchive(20_000);
    await promote();
    await writeAndArchive(20_000);
    await promote();
    await writeAndArchive(20_000);
    // Inside a segment, not at its boundary, which pg_switch_wal leaves.
    await cluster.sql('INSERT INTO marker VALUES (0)');
    toLsn = parseLsn(await cluster.sql('SELECT pg_current_wal_lsn()'));
    await cluster.switchAndWaitArchived();
  });

  after(async () => {
    await cluster?.destroy();
    if (archive) rmSync(archive, { recursive: true, force: true });
  });

  it("parses the server's own history files", async () => {
    assert.equal(await cluster.sql('SELECT timeline_id FROM pg_control_checkpoint()'), '3');
    const second = parseHistory(readFileSync(join(cluster.dataDir, 'pg_wal', '00000002.history'), 'utf8'), 2, '00000002.history');
    const third = parseHistory(readFileSync(join(cluster.dataDir, 'pg_wal', '00000003.history'), 'utf8'), 3, '00000003.history');
    assert.deepEqual(third.map((entry) => [entry.timeline, entry.reason]), [[1, 'no recovery target specified'], [2, 'no recovery target specified']]);
    assert.deepEqual(second, third.slice(0, 1), "timeline 3's history starts with timeline 2's");
    assert.ok(fromLsn < third[0]!.switchPoint && third[0]!.switchPoint < third[1]!.switchPoint && third[1]!.switchPoint < toLsn);
  });

  it('follows the archived WAL from timeline 1 to timeline 3, without a gap', async () => {
    const catalog = await ArchiveCatalog.load(await FileStorage.open(archive));
    assert.deepEqual([catalog.segmentSize, catalog.segmentSizeSource], [SEGMENT_SIZE, 'walship/archive.json']);
    const graph = catalog.timelines();
    assert.deepEqual(graph.withHistory(), [2, 3]);
    assert.equal(graph.parent(3), 2);
    assert.equal(graph.parent(2), 1);
    const [first, second] = graph.ancestry(3).map((span) => span.end);
    const switchSegments = [first!, second!].map((lsn) => segmentNumberOfLsn(lsn, SEGMENT_SIZE));

    const ranges = catalog.segmentsBetween(3, fromLsn, toLsn);
    assert.deepEqual(ranges.map((range) => range.timeline), [1, 2, 3]);
    assert.equal(ranges[0]!.first, segmentNumberOfLsn(fromLsn, SEGMENT_SIZE));
    assert.deepEqual([ranges[1]!.first, ranges[2]!.first], switchSegments, 'each switch segment is read from the new timeline');
    assert.deepEqual([ranges[0]!.last + 1n, ranges[1]!.last + 1n], switchSegments);
    assert.equal(ranges[2]!.last, segmentNumberOfLsn(toLsn, SEGMENT_SIZE));
    assert.deepEqual(ranges.flatMap((range) => catalog.wal.gaps(range.timeline, range.first, range.last)), []);
    // The old timelines' last segments were archived as .partial files at each promotion.
    assert.deepEqual(
      catalog.wal.otherFiles('partial').map((other) => other.file.name),
      [catalog.wal.segmentName(1, switchSegments[0]!) + '.partial', catalog.wal.segmentName(2, switchSegments[1]!) + '.partial'],
    );
  });

  it("records the segment size in a backup's sentinel, and knows the WAL it needs", async () => {
    const pushed = await walship(['backup-push', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    // Past the backup's own .backup file, so the wait ends on a segment.
    await writeAndArchive(10);
    const name = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    const sentinel = JSON.parse(readFileSync(join(archive, 'basebackups_005', `${name}_backup_stop_sentinel.json`), 'utf8')) as BackupSentinel;
    assert.equal(sentinel.WalSegmentSize, SEGMENT_SIZE);
    const identity = JSON.parse(readFileSync(join(archive, 'walship', 'archive.json'), 'utf8')) as { WalSegmentSize: number };
    assert.equal(identity.WalSegmentSize, SEGMENT_SIZE);

    const catalog = await ArchiveCatalog.load(await FileStorage.open(archive));
    const [backup] = catalog.backups();
    assert.equal(backup?.BackupName, name);
    const needed = catalog.walNeededBy(backup!);
    assert.deepEqual(needed.map((range) => range.timeline), [3]);
    assert.equal(catalog.wal.segmentName(3, needed[0]!.first), name.slice('base_'.length));
    assert.deepEqual(needed.flatMap((range) => catalog.wal.gaps(range.timeline, range.first, range.last)), []);
  });
});
