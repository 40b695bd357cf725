/**
 * By hand: where the look-ahead pusher's and the prefetcher's peak RSS goes.
 * Synthetic 16 MiB segments (a third random bytes) are archived by a loop of
 * wal-push calls as PostgreSQL's archiver runs them, then restored by a loop
 * of wal-fetch calls with a pause standing for redo; the helpers they start
 * are sampled from /proc every 20 ms (VmHWM, RssAnon, RssFile). s3 is
 * s3rver behind a TLS proxy in this process, as in the bench.
 *
 *   node scripts/bench/helper-memory.ts [--segments 40] [--backend file|s3] [--rounds 2] BINARY...
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { startS3rver } from '../../test/support/emulators.ts';
import { startTlsProxy } from '../../test/support/tls-proxy.ts';
import { asWalSegment } from '../../test/support/wal.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { segments: { type: 'string', default: '40' }, backend: { type: 'string', default: 'file' }, rounds: { type: 'string', default: '2' } },
});
const segments = Number(values.segments);
const root = mkdtempSync(join(tmpdir(), 'walship-helper-memory-'));

function segmentName(index: number): string {
  return `00000001000000${(index >> 8).toString(16).padStart(2, '0').toUpperCase()}000000${(index & 0xff).toString(16).padStart(2, '0').toUpperCase()}`;
}

/** A segment: a third random bytes, the rest text-like runs, as OLTP WAL with full-page images compresses (about 3x). */
function segmentContent(index: number): Buffer {
  const content = Buffer.alloc(16 << 20);
  const words = Buffer.from(`tuple ${index} pgbench_accounts aid bid abalance filler `.repeat(64));
  for (let at = 0; at < content.length; at += 8192) {
    if ((at / 8192) % 3 === 0) randomBytes(8192).copy(content, at);
    else words.copy(content, at, (at / 8192) % 97, ((at / 8192) % 97) + 8192);
  }
  return asWalSegment(content);
}

const source = join(root, 'segments');
mkdirSync(source);
for (let index = 1; index <= segments; index++) writeFileSync(join(source, segmentName(index)), segmentContent(index));

interface Peaks {
  hwm: number;
  anon: number;
  file: number;
}

/** Samples the processes whose command line holds `marker`, every 20 ms, until stopped. */
function sampler(marker: string): () => Promise<Peaks> {
  const peaks: Peaks = { hwm: 0, anon: 0, file: 0 };
  let running = true;
  const perPid = new Map<string, string>();
  const loop = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) continue;
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
          peaks.hwm = Math.max(peaks.hwm, field('VmHWM'));
          perPid.set(pid, `${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 120)} hwm ${field('VmHWM').toFixed(0)}`);
          peaks.anon = Math.max(peaks.anon, field('RssAnon'));
          peaks.file = Math.max(peaks.file, field('RssFile'));
        } catch {
          // gone
        }
      }
      await sleep(20);
    }
  })();
  return async () => {
    running = false;
    await loop;
    // One line per process: a second pusher (the first one idled out) shows up here.
    for (const [pid, line] of perPid) console.log(`  ${pid}: ${line}`);
    return peaks;
  };
}

async function settings(): Promise<{ env: Record<string, string>; stop: () => Promise<void> }> {
  if (values.backend === 'file') {
    const archive = join(root, `archive-${Date.now()}`);
    mkdirSync(archive);
    return { env: { WALG_FILE_PREFIX: archive }, stop: async () => rmSync(archive, { recursive: true, force: true }) };
  }
  const s3 = await startS3rver({ fast: true });
  const proxy = await startTlsProxy(root, s3.port);
  return {
    env: { ...s3.settings(`run-${Date.now()}`, `https://127.0.0.1:${proxy.port}`), WALG_S3_CA_CERT_FILE: proxy.certificate },
    stop: async () => {
      await proxy.stop();
      await s3.stop();
    },
  };
}

async function waitForExit(marker: string): Promise<void> {
  for (;;) {
    const alive = readdirSync('/proc').some((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    });
    if (!alive) return;
    await sleep(100);
  }
}

async function run(binary: string): Promise<string> {
  const storage = await settings();
  const data = mkdtempSync(join(root, 'data-'));
  const wal = join(data, 'pg_wal');
  mkdirSync(join(wal, 'archive_status'), { recursive: true });
  for (let index = 1; index <= segments; index++) {
    execFileSync('cp', [join(source, segmentName(index)), wal]);
    writeFileSync(join(wal, 'archive_status', `${segmentName(index)}.ready`), '');
  }
  const env = { PATH: process.env.PATH!, ...storage.env, WALSHIP_SPOOL_DIR: join(data, 'spool'), WALG_DOWNLOAD_CONCURRENCY: '10' };
  const pushPeaks = sampler('wal-push-ahead');
  const pushStart = Date.now();
  for (let index = 1; index <= segments; index++) {
    const name = segmentName(index);
    // Not spawnSync: the TLS proxy runs in this process.
    await promisify(execFile)(binary, ['wal-push', `pg_wal/${name}`], { cwd: data, env });
    // walship marks the files its pusher made durable as done itself.
    if (existsSync(join(wal, 'archive_status', `${name}.ready`))) renameSync(join(wal, 'archive_status', `${name}.ready`), join(wal, 'archive_status', `${name}.done`));
  }
  const pushSeconds = (Date.now() - pushStart) / 1000;
  await waitForExit('wal-push-ahead');
  const pusher = await pushPeaks();

  // Recovery: a postmaster.pid naming this (live) process, wal-fetch for each segment, 100 ms of "redo" between.
  writeFileSync(join(data, 'postmaster.pid'), `${process.pid}\n${data}\n${Math.floor(Date.now() / 1000)}\n`);
  const fetchPeaks = sampler('wal-prefetch');
  const fetchStart = Date.now();
  for (let index = 1; index <= segments; index++) {
    await promisify(execFile)(binary, ['wal-fetch', segmentName(index), 'pg_wal/RECOVERYXLOG'], { cwd: data, env });
    await sleep(100);
  }
  const fetchSeconds = (Date.now() - fetchStart) / 1000;
  rmSync(join(data, 'postmaster.pid'));
  await waitForExit('wal-prefetch');
  const prefetcher = await fetchPeaks();
  await storage.stop();
  rmSync(data, { recursive: true, force: true });
  return [
    `pusher hwm ${pusher.hwm.toFixed(0)} anon ${pusher.anon.toFixed(0)} file ${pusher.file.toFixed(0)} MiB, push loop ${pushSeconds.toFixed(1)} s`,
    `prefetcher hwm ${prefetcher.hwm.toFixed(0)} anon ${prefetcher.anon.toFixed(0)} file ${prefetcher.file.toFixed(0)} MiB, fetch loop ${fetchSeconds.toFixed(1)} s`,
  ].join('\n');
}

console.log(`load ${readFileSync('/proc/loadavg', 'utf8').trim()}; ${segments} segments, ${values.backend}`);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const binary of positionals) console.log(`round ${round + 1} ${binary}\n${await run(binary)}`);
}
console.log(`load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
rmSync(root, { recursive: true, force: true });
