/**
 * Per-segment cost of wal-push and wal-fetch on S3 (s3rver on loopback) next
 * to file storage, as whole processes of the built binary, the way
 * archive_command and restore_command run them.
 *
 * The segments are real: a PostgreSQL 15 cluster archives the WAL of a
 * pgbench bulk load (16 MiB segments) with `cp`. Every segment is then pushed
 * and fetched on each backend, the backends interleaved segment by segment
 * so that machine noise falls on both alike; each round uses a new prefix, so
 * every push is a fresh upload.
 *
 *   node scripts/with-runtime.mjs scripts/bench/storage.ts [--rounds N]
 *
 * Prints a markdown section. s3rver is a Node process on the same machine:
 * its own CPU time is part of the S3 figures, network latency is not.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { walshipBinary } from '../../test/support/paths.ts';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../../test/support/postgres.ts';

const { values: options } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, scale: { type: 'string', default: '6' } } });
const rounds = Number(options.rounds);
const log = (message: string) => process.stderr.write(`bench storage: ${message}\n`);

/** Runs the binary once and returns its wall time in milliseconds. */
function timed(args: string[], cwd: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(walshipBinary, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`walship ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Real 16 MiB segments: the WAL of a pgbench bulk load, archived with cp. */
async function archiveRealSegments(into: string): Promise<string[]> {
  const cluster = await PostgresCluster.init({ ...LOCAL_CLUSTER, settings: { archive_mode: 'on', archive_command: `cp %p ${into}/%f` } });
  try {
    await cluster.start();
    await cluster.pgbench(['-i', '-s', options.scale!, '-q']);
    await cluster.switchAndWaitArchived();
  } finally {
    await cluster.destroy();
  }
  return readdirSync(into).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
}

interface Backend {
  name: string;
  settings(round: number): Record<string, string>;
}

const workDir = mkdtempSync(join(tmpdir(), 'walship-bench-storage-'));
let s3rver: Emulator | undefined;
try {
  const segmentsDir = makePostgresOwnedDirectory('walship-bench-segments-');
  log('writing real WAL segments (pgbench bulk load)');
  const segments = await archiveRealSegments(segmentsDir);
  const dataDir = join(workDir, 'data');
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  for (const segment of segments) copyFileSync(join(segmentsDir, segment), join(dataDir, 'pg_wal', segment));
  rmSync(segmentsDir, { recursive: true, force: true });

  s3rver = await startS3rver();
  const fileArchive = join(workDir, 'file-archive');
  const backends: Backend[] = [
    {
      name: 'file',
      settings: (round) => {
        mkdirSync(join(fileArchive, `round-${round}`), { recursive: true });
        return { WALG_FILE_PREFIX: join(fileArchive, `round-${round}`) };
      },
    },
    { name: 's3 (s3rver)', settings: (round) => s3rver!.settings(`bench/round-${round}`) },
  ];

  const samples = new Map(backends.map((backend) => [backend.name, { push: [] as number[], fetch: [] as number[] }]));
  const processStart: number[] = [];
  log(`${segments.length} segments x ${rounds} rounds x ${backends.length} backends`);
  for (let round = 1; round <= rounds; round++) {
    for (const segment of segments) {
      // Rotate the order each segment, so neither backend always runs first.
      const ordered = (round + segments.indexOf(segment)) % 2 === 0 ? backends : [...backends].reverse();
      for (const backend of ordered) {
        const env = { ...backend.settings(round), WALSHIP_PREFETCH: 'false' };
        samples.get(backend.name)!.push.push(await timed(['wal-push', `pg_wal/${segment}`], dataDir, env));
        samples.get(backend.name)!.fetch.push(await timed(['wal-fetch', segment, 'pg_wal/RECOVERYXLOG'], dataDir, env));
      }
      processStart.push(await timed(['--version'], dataDir, {}));
    }
  }

  const row = (storage: string, command: string, values: number[]) =>
    `| ${storage} | ${command} | ${quantile(values, 0.5).toFixed(0)} | ${quantile(values, 0.9).toFixed(0)} | ${values.length} |`;
  const lines = [
    `Per 16 MiB segment (${segments.length} real segments of a pgbench -i -s ${options.scale} load, ${rounds} rounds), whole walship processes, zstd level 1:`,
    '',
    '| storage | command | median ms | p90 ms | runs |',
    '|---|---|---|---|---|',
    row('(none)', 'walship --version (process start)', processStart),
    ...backends.flatMap((backend) => [
      row(backend.name, 'wal-push', samples.get(backend.name)!.push),
      row(backend.name, 'wal-fetch', samples.get(backend.name)!.fetch),
    ]),
  ];
  console.log(lines.join('\n'));
} finally {
  await s3rver?.stop();
  rmSync(workDir, { recursive: true, force: true });
}
