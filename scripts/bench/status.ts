/**
 * status at scale (issue 13): `walship status --json` (and with
 * `--prometheus`) on the synthetic archive of the retention benchmark
 * (test/support/synthetic-archive.ts): 100,000 WAL objects on three timelines
 * and 400 backups, on file storage and on s3rver, with no server (the
 * archiver section is left out: one psql query). Time, CPU time and peak RSS
 * of the whole command. --quick divides the archive by ten.
 *
 * Aims: under 5 s on file storage and 15 s on s3rver, with bounded memory.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Config } from '../../src/config/config.ts';
import { type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { isRoot, POSTGRES_USER } from '../../test/support/processes.ts';
import { openConfigured } from '../../test/support/storage.ts';
import { SyntheticArchive, writeToDirectory, writeToS3rverDirectory } from '../../test/support/synthetic-archive.ts';
import { type BenchContext, type BenchReport, fixed, markdownTable, postgresDirectory, serverEnvironment, timeShell } from './common.ts';

const SEGMENTS = 100_000;
const BACKUPS = 400;
/** Backups one a day, the newest an hour old; a drill report is not made: status is WARNING. */
const DAY_MS = 86_400_000;

interface Measured {
  seconds: number;
  cpuSeconds: number;
  rssMiB: number;
  load: number;
  state: string;
  /** The emulator's CPU seconds meanwhile (s3rver only): its share of the time. */
  emulatorCpuSeconds?: number;
}

async function status(context: BenchContext, settings: Record<string, string>, name: string, emulator?: Emulator): Promise<Measured> {
  const emulatorCpu = emulator?.cpuSeconds();
  const textfile = join(context.root, `${name}.prom`);
  // No server: PGHOST names a directory without one.
  const run = await timeShell(`${context.walship} status --json --prometheus ${textfile} > ${join(context.root, `${name}-status.json`)}`, {
    cwd: context.root,
    env: serverEnvironment({ ...settings, PGHOST: join(context.root, 'no-server-here') }),
    scratch: context.root,
  });
  if (run.code > 3) throw new Error(`walship status exited ${run.code}: ${run.stderr}`);
  const measured: Measured = { seconds: run.ms / 1000, cpuSeconds: run.cpuMs / 1000, rssMiB: run.maxRssKiB / 1024, load: loadavg()[0]!, state: ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'][run.code]! };
  if (emulator) measured.emulatorCpuSeconds = emulator.cpuSeconds() - emulatorCpu!;
  const emulatorShare = measured.emulatorCpuSeconds === undefined ? '' : `, the emulator's CPU ${fixed(measured.emulatorCpuSeconds, 2)} s`;
  context.log(`${name}: status in ${fixed(measured.seconds, 2)} s (CPU ${fixed(measured.cpuSeconds, 2)} s${emulatorShare}, load ${fixed(measured.load, 1)}), peak RSS ${fixed(measured.rssMiB, 0)} MiB, ${measured.state}`);
  return measured;
}

/** The storage's listing alone, in this process: what every command that surveys the archive pays first. */
async function listingSeconds(context: BenchContext, settings: Record<string, string>, name: string, emulator?: Emulator): Promise<number> {
  const emulatorCpu = emulator?.cpuSeconds();
  const started = performance.now();
  let objects = 0;
  for await (const _ of (await openConfigured(new Config(settings))).list('')) objects++;
  const seconds = (performance.now() - started) / 1000;
  const emulatorShare = emulator ? `, the emulator's CPU ${fixed(emulator.cpuSeconds() - emulatorCpu!, 2)} s` : '';
  context.log(`${name}: the listing alone, ${objects} objects, in ${fixed(seconds, 2)} s (load ${fixed(loadavg()[0]!, 1)}${emulatorShare})`);
  return seconds;
}

const shape = (scale: number) => ({ segments: SEGMENTS / scale, backups: BACKUPS / scale, partsPerBackup: 5, firstBackup: Date.now() - DAY_MS * (BACKUPS / scale) + 3_600_000, backupEveryMs: DAY_MS });

export async function benchStatus(context: BenchContext): Promise<BenchReport> {
  const scale = context.quick ? 10 : 1;
  const directory = postgresDirectory(join(context.root, 'status-file'));
  const objects = writeToDirectory(new SyntheticArchive(shape(scale)), directory);
  if (isRoot) execFileSync('chown', ['-R', `${POSTGRES_USER}:${POSTGRES_USER}`, directory]);
  context.log(`file: ${objects} objects written`);
  const file = await status(context, { WALG_FILE_PREFIX: directory }, 'file');
  const fileListing = await listingSeconds(context, { WALG_FILE_PREFIX: directory }, 'file');
  const emulator = await startS3rver({ fast: true });
  let s3: Measured;
  let s3Listing: number;
  let s3FirstListing: number;
  try {
    const s3Objects = writeToS3rverDirectory(new SyntheticArchive(shape(scale)), emulator.objectsDirectory!, 'status');
    context.log(`s3rver: ${s3Objects} objects written`);
    // s3rver-fast reads its folders and each key's metadata on the first listing, as a real store has its index already.
    s3FirstListing = await listingSeconds(context, emulator.settings('status'), 's3rver (first listing)', emulator);
    s3 = await status(context, emulator.settings('status'), 's3rver', emulator);
    s3Listing = await listingSeconds(context, emulator.settings('status'), 's3rver', emulator);
  } finally {
    await emulator.stop();
  }
  const row = (target: string, aim: string, measured: Measured, listing: number) => [
    target, fixed(measured.seconds, 2), fixed(measured.cpuSeconds, 2), measured.emulatorCpuSeconds === undefined ? '-' : fixed(measured.emulatorCpuSeconds, 2),
    fixed(measured.rssMiB, 0), aim, fixed(listing, 2), measured.state, fixed(measured.load, 1),
  ];
  return {
    title: 'status on a large synthetic archive',
    lines: [
      `\`walship status --json --prometheus FILE\` on a synthetic archive of ${(SEGMENTS / scale).toLocaleString('en')} WAL objects on three timelines (a few missing) and ${BACKUPS / scale} backups of 5 parts, one a day (the retention benchmark's generator), without a server; the verdict column is what it found (no drill report is made, so at best WARNING).`,
      'The listing alone is one `list` of the whole prefix from the benchmark process, after the command: the part no command that surveys the archive avoids. s3rver runs with test/support/s3rver-fast.ts, which reads its folders and every key\'s metadata on its first listing, done before the command (as a real store has its index already): ' +
        `${fixed(s3FirstListing, 2)} s. The emulator's CPU is its process's user plus system time during the command.`,
      'CPU is user plus system time; load is the 1-minute load average of the 2-core machine, shared with other sessions, when the command ended.',
      '',
      ...markdownTable(['storage', 'seconds', 'CPU s', "emulator's CPU s", 'peak RSS MiB', 'aim', 'listing alone s', 'verdict', 'load'], [row('file', '< 5 s', file, fileListing), row('s3rver', '< 15 s', s3, s3Listing)]),
    ],
  };
}
