/**
 * The CPU an idle pusher and an idle prefetcher take, by hand, for two
 * walship binaries in interleaved runs, from /proc/<pid>/stat (utime +
 * stime). No PostgreSQL: a data directory with pg_wal/archive_status, as in
 * the look-ahead and prefetch tests.
 *
 *   node scripts/bench/idle-cpu.ts [--rounds N] <walship A> <walship B>
 *
 * The pusher: a wal-push of one of two waiting segments starts it; once it
 * has uploaded the other and recorded it, it waits for the archiver, which
 * never comes, and its CPU over the next 4 s is taken (it exits 5 s after its
 * last work). The prefetcher: a wal-fetch of the first of 6 archived segments
 * starts it; once its window of 3 is downloaded, nobody takes them, and its
 * CPU over the next 12 s is taken (it exits after 15 s). Each figure is also
 * given for the whole life of the process (its start, its work, the idle
 * wait), from its last sample before it exited.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { asWalSegment } from '../../test/support/wal.ts';

const SEGMENT_SIZE = 16 << 20;
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** utime + stime of `pid` in seconds; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    if (fields[0] === 'Z') return undefined;
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function pidIn(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

/** CPU of `pid` over `windowMs` from now, and over its whole life (its last sample before it exits). */
async function measure(pid: number, windowMs: number): Promise<{ idle: number; life: number }> {
  const atStart = cpuSeconds(pid)!;
  await sleep(windowMs);
  const idle = cpuSeconds(pid)! - atStart;
  let life = atStart + idle;
  for (let now = cpuSeconds(pid); now !== undefined; now = cpuSeconds(pid)) {
    life = now;
    await sleep(20);
  }
  return { idle, life };
}

function segment(number: number): { name: string; content: Buffer } {
  const name = segmentName(1, BigInt(number), SEGMENT_SIZE);
  return { name, content: asWalSegment(Buffer.alloc(SEGMENT_SIZE, number)) };
}

function walship(binary: string, cwd: string, archive: string, args: string[], env: Record<string, string> = {}): void {
  execFileSync(binary, args, { cwd, env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME, WALG_FILE_PREFIX: archive, ...env }, stdio: 'ignore' });
}

async function idlePusher(binary: string, root: string): Promise<{ idle: number; life: number }> {
  const data = join(root, 'data');
  const archive = join(root, 'archive');
  mkdirSync(join(data, 'pg_wal', 'archive_status'), { recursive: true });
  mkdirSync(archive);
  const [first, second] = [segment(1), segment(2)];
  for (const { name, content } of [first, second]) {
    writeFileSync(join(data, 'pg_wal', name), content);
    writeFileSync(join(data, 'pg_wal', 'archive_status', `${name}.ready`), '');
  }
  walship(binary, data, archive, ['wal-push', `pg_wal/${first.name}`]);
  const archived = join(root, '.walship-data', 'archived');
  const records = () => (existsSync(archived) ? readdirSync(archived).map((key) => join(archived, key)) : []);
  await waitFor(() => records().some((directory) => existsSync(join(directory, second.name))), 'the pusher to record the second segment');
  const pid = pidIn(join(records()[0]!, '.pusher.pid'))!;
  return measure(pid, 4_000);
}

async function idlePrefetcher(binary: string, root: string): Promise<{ idle: number; life: number }> {
  const data = join(root, 'data');
  const archive = join(root, 'archive');
  mkdirSync(join(data, 'pg_wal', 'archive_status'), { recursive: true });
  mkdirSync(archive);
  const segments = [1, 2, 3, 4, 5, 6].map(segment);
  for (const { name, content } of segments) {
    writeFileSync(join(data, 'pg_wal', name), content);
    walship(binary, data, archive, ['wal-push', `pg_wal/${name}`], { TOTAL_BG_UPLOADED_LIMIT: '0' });
  }
  rmSync(join(data, 'pg_wal'), { recursive: true });
  mkdirSync(join(data, 'pg_wal'));
  writeFileSync(join(data, 'recovery.signal'), '');
  // This script's pid stands for the postmaster of the recovery.
  writeFileSync(join(data, 'postmaster.pid'), `${process.pid}\n${data}\n1700000000\n5432\n/tmp\n\n`);
  walship(binary, data, archive, ['wal-fetch', segments[0]!.name, 'pg_wal/RECOVERYXLOG'], { WALG_DOWNLOAD_CONCURRENCY: '3' });
  const prefetch = join(root, '.walship-data', 'prefetch');
  const area = () => {
    const [key] = existsSync(prefetch) ? readdirSync(prefetch).filter((entry) => /^[0-9a-f]{16}$/.test(entry)) : [];
    return key ? join(prefetch, key, `${process.pid}-1700000000`) : undefined;
  };
  const wanted = segments.slice(1, 4).map(({ name }) => name);
  await waitFor(() => {
    const directory = area();
    return directory !== undefined && existsSync(directory) && wanted.every((name) => readdirSync(directory).includes(name));
  }, 'the prefetcher to fill its window');
  const pid = pidIn(join(area()!, '.prefetcher.pid'))!;
  return measure(pid, 12_000);
}

const { values, positionals } = parseArgs({ options: { rounds: { type: 'string', default: '5' } }, allowPositionals: true });
const binaries = positionals;
if (binaries.length === 0) throw new Error('usage: node scripts/bench/idle-cpu.ts [--rounds N] <walship> [<walship> ...]');
const results = new Map<string, { pusher: string[]; prefetcher: string[] }>(binaries.map((binary) => [binary, { pusher: [], prefetcher: [] }]));
const show = ({ idle, life }: { idle: number; life: number }) => `${idle.toFixed(2)}/${life.toFixed(2)}`;
for (let round = 0; round < Number(values.rounds); round++) {
  for (const binary of round % 2 === 0 ? binaries : [...binaries].reverse()) {
    for (const [job, run] of [['pusher', idlePusher], ['prefetcher', idlePrefetcher]] as const) {
      const root = mkdtempSync(join(tmpdir(), 'walship-idle-cpu-'));
      try {
        const figure = show(await run(binary, root));
        results.get(binary)![job].push(figure);
        console.log(`round ${round + 1} ${binary} ${job}: ${figure} s`);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  }
}
console.log('\nCPU seconds, idle window / whole life (pusher: 4 s window, prefetcher: 12 s window)');
for (const [binary, { pusher, prefetcher }] of results) console.log(`${binary}\n  pusher:     ${pusher.join('  ')}\n  prefetcher: ${prefetcher.join('  ')}`);
