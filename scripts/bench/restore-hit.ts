/**
 * What one restore_command call costs recovery, with and without the shell
 * fast path that backup-fetch writes (src/wal/restore-command.ts), for one
 * 16 MiB segment on file storage, alternating, as PostgreSQL runs it
 * (/bin/sh -c in the data directory, %p = pg_wal/RECOVERYXLOG):
 *   hit:  the segment is ready in this recovery's prefetch area:
 *         the fast path (sh, ln, rm) vs `walship wal-fetch` taking it (a rename);
 *   miss: nothing prefetched, WALSHIP_PREFETCH=false so no prefetcher runs:
 *         the fast path falling through to wal-fetch vs wal-fetch alone.
 * Wall time (spawn to exit, GNU time's own start included) and CPU time (user + sys
 * of the call's processes, from GNU time: 10 ms resolution, so the mean) per way.
 *
 *   node scripts/with-runtime.mjs scripts/bench/restore-hit.ts [--rounds N]
 */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../../src/config/config.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import { archiveKey } from '../../src/wal/prefetch.ts';
import { restoreCommandWithFastPath } from '../../src/wal/restore-command.ts';
import { PREFETCH_AREA, spoolNextTo } from '../../src/wal/spool.ts';
import { walshipBinary } from '../../test/support/paths.ts';
import { asWalSegment } from '../../test/support/wal.ts';
import { fixed, markdownTable, median } from './common.ts';

const args = process.argv.slice(2);
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 30;
const scratch = mkdtempSync(join(tmpdir(), 'walship-restore-hit-'));
const archive = join(scratch, 'archive');
const dataDir = join(scratch, 'data');
mkdirSync(archive);
mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
const recovery = `${process.pid}-1700000000`;
writeFileSync(join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n1700000000\n5432\n/tmp\n\n`);

const settings = { WALG_FILE_PREFIX: archive, WALG_COMPRESSION_LEVEL: '1' };
const env = { PATH: '/usr/bin:/bin', ...settings };
const name = segmentName(1, 1n, 16 << 20);
// OLTP-like content: runs of repeated bytes with noise between them.
const pieces = Array.from({ length: 256 }, (_, index) => Buffer.concat([Buffer.alloc(44_000, index % 7), Buffer.from(Array.from({ length: 21_536 }, () => Math.floor(Math.random() * 256)))]));
const ready = join(scratch, 'ready-segment');
writeFileSync(ready, asWalSegment(Buffer.concat(pieces)));
writeFileSync(join(dataDir, 'pg_wal', name), readFileSync(ready));
execFileSync(walshipBinary, ['wal-push', `pg_wal/${name}`], { cwd: dataDir, env: { ...env, TOTAL_BG_UPLOADED_LIMIT: '0' } });
rmSync(join(dataDir, 'pg_wal', name));

const area = join(spoolNextTo(dataDir), PREFETCH_AREA, archiveKey(storageSpecFrom(new Config(settings)).identity), recovery);
const fastPath = restoreCommandWithFastPath([walshipBinary, 'wal-fetch'], join(spoolNextTo(dataDir), PREFETCH_AREA), storageSpecFrom(new Config(settings)).identity);
const plain = `${walshipBinary} wal-fetch %f %p`;
const asPostgresRuns = (command: string) => command.replaceAll('%f', name).replaceAll('%p', 'pg_wal/RECOVERYXLOG');

interface Way {
  command: string;
  prefetch: boolean;
  /** Puts the segment in the prefetch area (a hard link of a verified copy: not timed). */
  hit: boolean;
}
const ways: Record<string, Way> = {
  'hit: shell fast path': { command: fastPath, prefetch: true, hit: true },
  'hit: wal-fetch takes it': { command: plain, prefetch: true, hit: true },
  'miss: shell fast path, then wal-fetch': { command: fastPath, prefetch: false, hit: false },
  'miss: wal-fetch alone': { command: plain, prefetch: false, hit: false },
};

const timeLog = join(scratch, 'time.log');
function call(way: Way): { wall: number; cpu: number } {
  rmSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
  if (way.hit) {
    mkdirSync(area, { recursive: true });
    rmSync(join(area, name), { force: true });
    linkSync(ready, join(area, name));
  }
  const started = process.hrtime.bigint();
  execFileSync('/usr/bin/time', ['-f', '%U %S', '-o', timeLog, '/bin/sh', '-c', asPostgresRuns(way.command)], {
    cwd: dataDir,
    env: { ...env, WALSHIP_PREFETCH: String(way.prefetch) },
  });
  const wall = Number(process.hrtime.bigint() - started) / 1e6;
  const [user, system] = readFileSync(timeLog, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wall, cpu: (user! + system!) * 1000 };
}

const times = new Map<string, { wall: number[]; cpu: number[] }>(Object.keys(ways).map((way) => [way, { wall: [], cpu: [] }]));
try {
  for (const way of Object.values(ways)) call(way); // warm-up: page cache, the native addon's cache
  for (let round = 0; round < rounds; round++) {
    const order = Object.keys(ways);
    for (let turn = 0; turn < order.length; turn++) {
      const way = order[(round + turn) % order.length]!;
      const { wall, cpu } = call(ways[way]!);
      times.get(way)!.wall.push(wall);
      times.get(way)!.cpu.push(cpu);
    }
  }
} finally {
  // A prefetcher started by the hits may still wait for recovery to ask again.
  execFileSync('sh', ['-c', `pid=$(cut -d' ' -f1 ${join(area, '.prefetcher.pid')} 2>/dev/null) && kill "$pid" 2>/dev/null; true`]);
  rmSync(scratch, { recursive: true, force: true });
}

const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`restore_command cost per call, ${rounds} rounds alternating: median wall, mean CPU; load average ${load}\n`);
const baseline = (way: string) => median(times.get(way)!.wall);
const rows = [...times].map(([way, { wall, cpu }]) => {
  const other = way.startsWith('hit') ? 'hit: wal-fetch takes it' : 'miss: wal-fetch alone';
  const meanCpu = cpu.reduce((sum, value) => sum + value, 0) / cpu.length;
  return [way, fixed(median(wall), 1), fixed(meanCpu, 1), `${fixed(median(wall) / baseline(other), 2)}x`];
});
console.log(markdownTable(['way', 'wall ms', 'CPU ms', 'wall / without the fast path'], rows).join('\n'));
