/**
 * Replay without PostgreSQL, to compare two builds' prefetchers: restore_command
 * as backup-fetch writes it (the shell fast path, then wal-fetch) takes N
 * archived 16 MiB segments one after another, with a pause standing for redo.
 *
 *   node scripts/bench/replay-sim.ts [--segments 40] [--redo-ms 150] [--rounds 3] <walship A> <walship B>
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Config } from '../../src/config/config.ts';
import { segmentName } from '../../src/postgres/wal-name.ts';
import { storageSpecFrom } from '../../src/storage/spec.ts';
import { restoreCommandWithFastPath } from '../../src/wal/restore-command.ts';
import { PREFETCH_AREA, spoolNextTo } from '../../src/wal/spool.ts';
import { asWalSegment } from '../../test/support/wal.ts';

const SEGMENT_SIZE = 16 << 20;
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const { values, positionals } = parseArgs({ options: { segments: { type: 'string', default: '40' }, 'redo-ms': { type: 'string', default: '150' }, rounds: { type: 'string', default: '3' } }, allowPositionals: true });
const count = Number(values.segments);
const redoMs = Number(values['redo-ms']);

/** WAL-like content: a quarter incompressible, the rest repetitive. */
function content(number: number): Buffer {
  const noise = randomBytes(SEGMENT_SIZE / 4);
  const text = Buffer.alloc(SEGMENT_SIZE - noise.length, `segment ${number} tuple data `);
  return asWalSegment(Buffer.concat([noise, text]));
}

async function replay(binary: string): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'walship-replay-sim-'));
  try {
    const data = join(root, 'data');
    const archive = join(root, 'archive');
    mkdirSync(join(data, 'pg_wal', 'archive_status'), { recursive: true });
    mkdirSync(archive);
    const env = { PATH: '/usr/bin:/bin', HOME: process.env.HOME!, WALG_FILE_PREFIX: archive };
    const names = Array.from({ length: count }, (_, i) => segmentName(1, BigInt(i + 1), SEGMENT_SIZE));
    names.forEach((name, i) => {
      writeFileSync(join(data, 'pg_wal', name), content(i + 1));
      execFileSync(binary, ['wal-push', `pg_wal/${name}`], { cwd: data, env: { ...env, TOTAL_BG_UPLOADED_LIMIT: '0' }, stdio: 'ignore' });
      unlinkSync(join(data, 'pg_wal', name));
    });
    writeFileSync(join(data, 'recovery.signal'), '');
    writeFileSync(join(data, 'postmaster.pid'), `${process.pid}\n${data}\n1700000000\n5432\n/tmp\n\n`);
    const identity = storageSpecFrom(new Config({ WALG_FILE_PREFIX: archive })).identity;
    const command = restoreCommandWithFastPath([binary, 'wal-fetch'], join(spoolNextTo(data), PREFETCH_AREA), identity);
    let misses = 0;
    let prefetcherCpu = 0;
    let prefetcher: number | undefined;
    const begun = Date.now();
    for (const name of names) {
      const started = Date.now();
      const result = spawnSync('/bin/sh', ['-c', command.replaceAll('%f', name).replaceAll('%p', 'pg_wal/RECOVERYXLOG')], { cwd: data, env, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`restore of ${name}: ${result.status} ${result.stderr}`);
      if (Date.now() - started > 30 || result.stderr.includes('wal-fetch')) misses++;
      prefetcher ??= findPrefetcher(root);
      if (prefetcher) prefetcherCpu = cpu(prefetcher) ?? prefetcherCpu;
      rmSync(join(data, 'pg_wal', 'RECOVERYXLOG'));
      await sleep(redoMs);
    }
    const seconds = (Date.now() - begun) / 1000;
    return `${seconds.toFixed(2)} s, ${misses} slow restores (>30 ms), prefetcher CPU ${(prefetcherCpu * 1000 / count).toFixed(0)} ms/segment so far`;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function findPrefetcher(root: string): number | undefined {
  const out = spawnSync('sh', ['-c', `cat ${root}/.walship-data/prefetch/*/*/.prefetcher.pid 2>/dev/null`], { encoding: 'utf8' }).stdout;
  const pid = Number(out.split(' ')[0]);
  return pid > 0 ? pid : undefined;
}

function cpu(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return undefined;
  }
}

for (let round = 0; round < Number(values.rounds); round++) {
  for (const binary of round % 2 === 0 ? positionals : [...positionals].reverse()) console.log(`round ${round + 1} ${binary}: ${await replay(binary)}`);
}
