// wal-show, wal-verify and backup-verify on a real PostgreSQL 15 archiving to
// file storage (1 MiB segments): a healthy archive is OK; archiving stalled
// for the newest segments is a WARNING; a segment deleted from the middle, a
// corrupted part and a file tampered with inside a part (its part's SHA-256
// rewritten to match) are CRITICAL, naming what is wrong; a promoted restore
// that archives timeline 2 shows both timelines, and the old primary's
// timeline check is CRITICAL; an unusable storage is UNKNOWN.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import type { BackupSentinel } from '../../src/archive/backups.ts';
import { TarParser } from '../../src/backup/tar.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

const verdict = (stdout: string) => stdout.split('\n')[0]!;

describe('wal-show, wal-verify and backup-verify on file storage', () => {
  let archive: string;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  let backupName: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  /** walship as the postgres OS user, reaching `server` through the libpq settings (null: no server). */
  const walship = (args: string[], server: PostgresCluster | null = primary, extraEnv: Record<string, string> = {}) =>
    run(walshipBinary, args, { asPostgres: true, env: { ...process.env, ...env, ...(server ? libpq(server) : { PGHOST: join(archive, 'no-server-here') }), ...extraEnv } });

  const walKeyOf = (segment: string) => join(archive, 'wal_005', `${segment}.zst`);
  const partPath = () => join(archive, 'basebackups_005', backupName, 'tar_partitions', 'part_001.tar.zst');
  const sentinelPath = () => join(archive, 'basebackups_005', `${backupName}_backup_stop_sentinel.json`);

  async function writeAndArchive(cluster = primary): Promise<string> {
    await cluster.sql('INSERT INTO marker SELECT g FROM generate_series(1, 5000) g');
    return cluster.switchAndWaitArchived();
  }

  /** Replaces `path` for the length of `work`, then puts the original back. */
  async function whileReplaced(paths: string[], replace: () => void, work: () => Promise<void>): Promise<void> {
    const originals = paths.map((path) => readFileSync(path));
    try {
      replace();
      await work();
    } finally {
      paths.forEach((path, index) => writeFileSync(path, originals[index]!));
    }
  }

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-archive-');
    // No look-ahead pusher: the stalled-archiving test decides what is archived.
    env = { WALG_FILE_PREFIX: archive, WALSHIP_PREFETCH: 'false', TOTAL_BG_UPLOADED_LIMIT: '0', PATH: `${postgresBin}:${process.env.PATH}` };
    primary = await PostgresCluster.init({ env, walSegmentSizeMiB: 1, settings: { archive_mode: 'on', archive_command: `${walshipBinary} wal-push %p` } });
    await primary.start();
    await primary.sql('CREATE TABLE marker (id int)');
    await primary.pgbench(['-i', '-s', '1', '-q']);
    await writeAndArchive();
    const pushed = await walship(['backup-push', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    backupName = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    for (let round = 0; round < 4; round++) await writeAndArchive();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await primary?.destroy();
    if (archive) rmSync(archive, { recursive: true, force: true });
  });

  it('shows a healthy archive as one timeline, and finds it OK', async () => {
    const shown = await walship(['wal-show']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^TLI\s+PARENT TLI\s+SWITCHPOINT LSN\s+START SEGMENT\s+END SEGMENT\s+SEGMENT RANGE\s+SEGMENTS COUNT\s+STATUS\s+BACKUPS COUNT$/m);
    assert.match(shown.stdout, /^1\s+-\s+-\s+0{7}10{8}\S{8}\s+\S+\s+(\d+)\s+\1\s+OK\s+1$/m);
    assert.match(shown.stdout, new RegExp(`^backups starting on timeline 1: ${backupName}$`, 'm'));

    const verified = await walship(['wal-verify']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verdict(verified.stdout), new RegExp(`^WALSHIP OK - integrity: \\d+ WAL segments from ${backupName} to 0000000100000000000000[0-9A-F]{2} in storage; timeline: the cluster's timeline 1 is the highest in storage$`));
    const json = JSON.parse((await walship(['wal-verify', 'integrity', '--json'])).stdout.split('\n').slice(1).join('\n'));
    assert.equal(json.integrity.status, 'OK');
    assert.deepEqual(json.integrity.details.map((run: { status: string }) => run.status), ['FOUND']);
    assert.equal(json.integrity.position.source, 'server');
    assert.equal(json.timeline, undefined, 'only the check named');

    const backup = await walship(['backup-verify']);
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.match(verdict(backup.stdout), new RegExp(`^WALSHIP OK - ${backupName}: \\d{3,} files match backup_manifest \\(.* read\\); the WAL to its consistency point \\(1 segment\\) is in the backup$`));
    const all = JSON.parse((await walship(['backup-verify', '--all', '--json'])).stdout.split('\n').slice(1).join('\n'));
    assert.deepEqual(all.backups.map((report: { backup_name: string; status: string; checksum_algorithm: string }) => [report.backup_name, report.status, report.checksum_algorithm]), [[backupName, 'OK', 'CRC32C']]);
  });

  it('warns, not more, about the newest segments while archiving stalls, and is OK once they are stored', async () => {
    await primary.sql("ALTER SYSTEM SET archive_command = '/bin/false'");
    await primary.sql('SELECT pg_reload_conf()');
    const unarchived: string[] = [];
    for (let round = 0; round < 2; round++) {
      await primary.sql('INSERT INTO marker SELECT g FROM generate_series(1, 5000) g');
      unarchived.push(await primary.sql('SELECT pg_walfile_name(pg_current_wal_lsn())'));
      await primary.sql('SELECT pg_switch_wal()');
    }
    const stalled = await walship(['wal-verify', 'integrity']);
    assert.equal(stalled.code, 1, stalled.stdout + stalled.stderr);
    assert.equal(verdict(stalled.stdout), `WALSHIP WARNING - integrity: 2 WAL segments not in storage yet (delayed or uploading): ${unarchived[0]} to ${unarchived[1]}`);
    assert.match(stalled.stdout, /MISSING_UPLOADING/);
    // Outside the uploading window they would be lost.
    const narrow = await walship(['wal-verify', 'integrity'], primary, { WALG_UPLOAD_CONCURRENCY: '1' });
    assert.equal(narrow.code, 2, narrow.stdout);
    assert.match(verdict(narrow.stdout), new RegExp(`^WALSHIP CRITICAL - integrity: 1 WAL segment lost: ${unarchived[0]}; integrity: 1 WAL segment not in storage yet`));

    await primary.sql('ALTER SYSTEM RESET archive_command');
    await primary.sql('SELECT pg_reload_conf()');
    await primary.waitArchived(unarchived[1]!);
    assert.equal((await walship(['wal-verify', 'integrity'])).code, 0);
  });

  it('is CRITICAL about a segment deleted from the middle, naming it, with or without the server', async () => {
    const start = backupName.slice('base_'.length);
    const segments = readdirSync(join(archive, 'wal_005')).filter((name) => /^[0-9A-F]{24}\.zst$/.test(name)).map((name) => name.slice(0, 24)).sort();
    const deleted = segments[segments.indexOf(start) + 2]!;
    await whileReplaced([walKeyOf(deleted)], () => rmSync(walKeyOf(deleted)), async () => {
      const verified = await walship(['wal-verify']);
      assert.equal(verified.code, 2, verified.stdout + verified.stderr);
      assert.equal(verdict(verified.stdout), `WALSHIP CRITICAL - integrity: 1 WAL segment lost: ${deleted}`);
      assert.match(verified.stdout, new RegExp(`^  1\\s+${deleted}\\s+${deleted}\\s+1\\s+MISSING_LOST$`, 'm'));

      const shown = await walship(['wal-show']);
      assert.match(shown.stdout, /\s+LOST_SEGMENTS\s+1$/m);
      assert.match(shown.stdout, new RegExp(`^timeline 1 is missing ${deleted}$`, 'm'));

      // Without a server: up to the newest segment stored, and the timeline cannot be told.
      const alone = await walship(['wal-verify'], null, { WALG_UPLOAD_CONCURRENCY: '1' });
      assert.equal(alone.code, 2, alone.stdout);
      assert.match(verdict(alone.stdout), new RegExp(`^WALSHIP CRITICAL - integrity: 1 WAL segment lost: ${deleted}; timeline: cannot tell the cluster's timeline: no server reached \\(.*\\); the highest in storage is 1$`));
      assert.match(alone.stdout, /^integrity: CRITICAL: from the start of .* to the newest segment stored on timeline 1's history: no server reached/m);
      // The backup's own WAL is inside it: backup-verify does not need the segment.
      assert.equal((await walship(['backup-verify'])).code, 0);
    });
  });

  it('is CRITICAL about a corrupted part, naming it', async () => {
    await whileReplaced([partPath()], () => {
      const part = readFileSync(partPath());
      part[Math.floor(part.length / 2)]! ^= 0xff;
      writeFileSync(partPath(), part);
    }, async () => {
      const verified = await walship(['backup-verify', backupName]);
      assert.equal(verified.code, 2, verified.stdout + verified.stderr);
      assert.match(verdict(verified.stdout), new RegExp(`^WALSHIP CRITICAL - ${backupName}: basebackups_005/${backupName}/tar_partitions/part_001\\.tar\\.zst is (corrupt|damaged): `));
    });
  });

  it('is CRITICAL about a file that differs from the manifest in a part re-stored with a matching SHA-256, naming the file', async () => {
    await whileReplaced([partPath(), sentinelPath()], () => {
      // PG_VERSION's "15" becomes "16": same size, another checksum.
      const tar = zstdDecompressSync(readFileSync(partPath()));
      const at = tarMemberOffset(tar, 'PG_VERSION');
      assert.equal(tar.subarray(at, at + 3).toString(), '15\n');
      tar[at + 1] = '6'.charCodeAt(0);
      const part = zstdCompressSync(tar);
      writeFileSync(partPath(), part);
      const sentinel = JSON.parse(readFileSync(sentinelPath(), 'utf8')) as BackupSentinel;
      sentinel.Parts[0]!.SHA256 = createHash('sha256').update(part).digest('hex');
      sentinel.Parts[0]!.CompressedSize = part.length;
      writeFileSync(sentinelPath(), JSON.stringify(sentinel));
    }, async () => {
      const verified = await walship(['backup-verify', '--json']);
      assert.equal(verified.code, 2, verified.stdout + verified.stderr);
      assert.match(verdict(verified.stdout), new RegExp(`^WALSHIP CRITICAL - ${backupName}: PG_VERSION does not match backup_manifest: CRC-32C [0-9a-f]{8}, expected [0-9a-f]{8}$`));
    });
    assert.equal((await walship(['backup-verify'])).code, 0, 'the original part verifies again');
  });

  it('shows a promoted restore archiving timeline 2, whose timeline check is OK, and CRITICAL from the old primary', async () => {
    const root = makePostgresOwnedDirectory('walship-restore-');
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const fetched = await walship(['backup-fetch', dataDir, backupName, '--recovery-target-immediate', '--recovery-target-action', 'promote', '--archive']);
    assert.equal(fetched.code, 0, fetched.stderr);
    const restored = await PostgresCluster.adopt(dataDir, root, { env });
    cleanups.push(() => restored.destroy());
    await restored.start();
    await restored.waitPromoted();
    await writeAndArchive(restored);
    await restored.waitArchived('00000002.history').catch(() => undefined);
    const switchPoint = readFileSync(join(dataDir, 'pg_wal', '00000002.history'), 'utf8').trim().split('\t')[1]!;

    const shown = await walship(['wal-show', '--json'], restored);
    const timelines = JSON.parse(shown.stdout) as { id: number; parent_id: number | null; switch_point_lsn: string | null; status: string; backups: string[] }[];
    assert.deepEqual(
      timelines.map((timeline) => [timeline.id, timeline.parent_id, timeline.switch_point_lsn, timeline.status, timeline.backups]),
      [[1, null, null, 'OK', [backupName]], [2, 1, switchPoint, 'OK', []]],
    );
    assert.match((await walship(['wal-show'], restored)).stdout, new RegExp(`^2\\s+1\\s+${switchPoint.replace('/', '\\/')}\\s+00000002`, 'm'));

    const fromNew = await walship(['wal-verify'], restored);
    assert.equal(fromNew.code, 0, fromNew.stdout + fromNew.stderr);
    assert.match(verdict(fromNew.stdout), /timeline: the cluster's timeline 2 is the highest in storage$/);
    const fromOld = await walship(['wal-verify', 'timeline']);
    assert.equal(fromOld.code, 2, fromOld.stdout);
    assert.match(verdict(fromOld.stdout), /^WALSHIP CRITICAL - timeline: the cluster is on timeline 1, but storage holds timeline 2: another server promoted from this cluster archives here/);
  });

  it('is UNKNOWN, in one line, when the storage cannot be used', async () => {
    for (const command of [['wal-verify'], ['backup-verify']]) {
      const result = await walship(command, primary, { WALG_FILE_PREFIX: join(archive, 'missing') });
      assert.equal(result.code, 3, result.stdout + result.stderr);
      assert.equal(result.stdout, `WALSHIP UNKNOWN - WALG_FILE_PREFIX=${join(archive, 'missing')} does not exist: create the directory (writable by the PostgreSQL OS user) or fix the path\n`);
    }
    assert.equal((await walship(['wal-show'], primary, { WALG_FILE_PREFIX: join(archive, 'missing') })).code, 1, 'wal-show is no check');
    const usage = await walship(['wal-verify', 'integrety']);
    assert.equal(usage.code, 3);
    assert.match(usage.stdout, /^WALSHIP UNKNOWN - wal-verify checks "integrety"\? expected integrity, timeline or both/);
  });
});

/** Where the content of member `name` starts in a tar archive. */
function tarMemberOffset(tar: Buffer, name: string): number {
  let offset = 0;
  let member = '';
  for (const event of new TarParser().push(tar)) {
    if (event.kind === 'entry') member = event.entry.path;
    else if (event.kind === 'data' && member === name) return offset;
    offset += event.raw.length;
  }
  throw new Error(`${name} is not in the part`);
}
