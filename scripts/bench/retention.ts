/**
 * Retention at scale (issue 11): `walship delete retain --keep-daily 7
 * --keep-weekly 4 --keep-monthly 12` on a synthetic archive
 * (test/support/synthetic-archive.ts: WAL on three timelines, backups spread
 * over 1,000 days). On file storage, 1,000,000 WAL objects and 500
 * backups: the plan's time and peak RSS (the dry run), then the confirmed
 * delete's object rate. On s3rver, 100,000 WAL objects: the plan, and the
 * delete's object rate next to one-by-one DeleteObject requests (16 at once,
 * and one after another) in the same run. --quick divides the archives by ten.
 *
 * Aims: a plan in under 10 s and 200 MB; deletes at 1,000 objects/s or more
 * on file storage, and at twice the rate of one-by-one deletes on s3rver.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Config } from '../../src/config/config.ts';
import { forEachConcurrently } from '../../src/util/concurrency.ts';
import { type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { isRoot, POSTGRES_USER } from '../../test/support/processes.ts';
import { openConfigured } from '../../test/support/storage.ts';
import { SyntheticArchive, writeToDirectory, writeToS3rverDirectory } from '../../test/support/synthetic-archive.ts';
import { type BenchContext, type BenchReport, fixed, markdownTable, postgresDirectory, ratio, serverEnvironment, timeShell } from './common.ts';

const POLICY = '--keep-daily 7 --keep-weekly 4 --keep-monthly 12';
/** The backups span about three years, so the policy keeps a year of them and deletes most of the WAL. */
const SPAN_MS = 1000 * 86_400_000;

interface Measured {
  seconds: number;
  /** User plus system CPU: the machine is shared, so wall time depends on the others' load. */
  cpuSeconds: number;
  rssMiB: number;
  /** The machine's 1-minute load average when the run ended. */
  load: number;
}

interface DeleteFigures {
  plan: Measured;
  /** The emulator's CPU seconds during the plan (s3rver only). */
  planEmulatorCpuSeconds?: number;
  deleteCommand: Measured;
  /** Objects the confirmed delete removed, and the seconds its deleting took (the listing before it excluded). */
  objects: number;
  deletingSeconds: number;
}

/** Runs walship with `args` as postgres (GNU time for the peak RSS), the JSON it prints saved to `output`. */
async function walshipRun(context: BenchContext, args: string, settings: Record<string, string>, output: string): Promise<Measured> {
  const run = await timeShell(`${context.walship} ${args} --json > ${output}`, { cwd: context.root, env: serverEnvironment({ ...settings, TZ: 'UTC' }), scratch: context.root });
  if (run.code !== 0) throw new Error(`walship ${args} exited ${run.code}: ${run.stderr}`);
  return { seconds: run.ms / 1000, cpuSeconds: run.cpuMs / 1000, rssMiB: run.maxRssKiB / 1024, load: loadavg()[0]! };
}

/** The dry run, then the confirmed delete, of the policy on the archive `settings` name. */
async function planAndDelete(context: BenchContext, settings: Record<string, string>, name: string, emulator?: Emulator): Promise<DeleteFigures> {
  const emulatorCpu = emulator?.cpuSeconds();
  const plan = await walshipRun(context, `delete retain ${POLICY}`, settings, join(context.root, `${name}-plan.json`));
  const planEmulatorCpuSeconds = emulator && emulator.cpuSeconds() - emulatorCpu!;
  const emulatorShare = planEmulatorCpuSeconds === undefined ? '' : `, the emulator's CPU ${fixed(planEmulatorCpuSeconds, 2)} s`;
  context.log(`${name}: plan in ${fixed(plan.seconds, 2)} s (CPU ${fixed(plan.cpuSeconds, 2)} s${emulatorShare}, load ${fixed(plan.load, 1)}), peak RSS ${fixed(plan.rssMiB, 0)} MiB`);
  const output = join(context.root, `${name}-deleted.json`);
  const deleteCommand = await walshipRun(context, `delete retain ${POLICY} --confirm`, settings, output);
  const { deleted } = JSON.parse(readFileSync(output, 'utf8')) as { deleted: { objects: number; seconds: number } };
  context.log(`${name}: deleted ${deleted.objects} objects in ${fixed(deleted.seconds, 1)} s (${fixed(deleted.objects / deleted.seconds, 0)}/s)`);
  return { plan, planEmulatorCpuSeconds, deleteCommand, objects: deleted.objects, deletingSeconds: deleted.seconds };
}

async function fileStorage(context: BenchContext, segments: number, backups: number): Promise<{ figures: DeleteFigures; archive: SyntheticArchive; writtenSeconds: number }> {
  const directory = postgresDirectory(join(context.root, 'retention-file'));
  const archive = new SyntheticArchive({ segments, backups, backupEveryMs: SPAN_MS / backups });
  const started = performance.now();
  const objects = writeToDirectory(archive, directory);
  if (isRoot) execFileSync('chown', ['-R', `${POSTGRES_USER}:${POSTGRES_USER}`, directory]);
  const writtenSeconds = (performance.now() - started) / 1000;
  context.log(`file: ${objects} objects written in ${fixed(writtenSeconds, 0)} s`);
  return { figures: await planAndDelete(context, { WALG_FILE_PREFIX: directory }, 'file'), archive, writtenSeconds };
}

const S3_BACKUPS = 100;

async function s3rver(context: BenchContext, segments: number, oneByOne: number): Promise<{ figures: DeleteFigures; parallel: number; sequential: number; listingSeconds: number }> {
  const emulator = await startS3rver({ fast: true });
  try {
    const bucket = emulator.objectsDirectory!;
    const objects = writeToS3rverDirectory(new SyntheticArchive({ segments, backups: S3_BACKUPS, partsPerBackup: 5, backupEveryMs: SPAN_MS / S3_BACKUPS }), bucket, 'retention');
    const baseline = new SyntheticArchive({ segments: oneByOne, backups: 1, partsPerBackup: 1 });
    writeToS3rverDirectory(baseline, bucket, 'one-by-one');
    context.log(`s3rver: ${objects} objects, and ${oneByOne} for one-by-one deletes, written`);

    // One-by-one: a DeleteObject request per key, 16 at once (as for GCS), then one after another.
    const storage = await openConfigured(new Config(emulator.settings('one-by-one')));
    const keys = [...baseline.walKeys()].filter((key) => !key.endsWith('.history'));
    const sequentialKeys = keys.splice(0, Math.floor(keys.length / 10));
    let started = performance.now();
    await forEachConcurrently(keys, 16, (key) => storage.delete(key));
    const parallel = keys.length / ((performance.now() - started) / 1000);
    started = performance.now();
    for (const key of sequentialKeys) await storage.delete(key);
    const sequential = sequentialKeys.length / ((performance.now() - started) / 1000);
    context.log(`s3rver: one-by-one ${fixed(parallel, 0)}/s (16 at once), ${fixed(sequential, 0)}/s (one after another)`);

    // s3rver's listing itself, for what the plan's time is made of; s3rver-fast reads every key's metadata on this first listing.
    started = performance.now();
    for await (const _ of (await openConfigured(new Config(emulator.settings('retention')))).list('')) continue;
    const listingSeconds = (performance.now() - started) / 1000;
    return { figures: await planAndDelete(context, emulator.settings('retention'), 's3rver', emulator), parallel, sequential, listingSeconds };
  } finally {
    await emulator.stop();
  }
}

export async function benchRetention(context: BenchContext): Promise<BenchReport> {
  const scale = context.quick ? 10 : 1;
  const file = await fileStorage(context, 1_000_000 / scale, 500 / scale);
  const s3 = await s3rver(context, 100_000 / scale, 20_000 / scale);
  const rate = (figures: DeleteFigures) => figures.objects / figures.deletingSeconds;
  const row = (target: string, walObjects: number, backups: number, figures: DeleteFigures) => [
    target,
    walObjects.toLocaleString('en'),
    String(backups),
    fixed(figures.plan.seconds, 2),
    fixed(figures.plan.cpuSeconds, 2),
    fixed(figures.plan.rssMiB, 0),
    figures.objects.toLocaleString('en'),
    fixed(rate(figures), 0),
    fixed(figures.deleteCommand.seconds, 1),
    fixed(figures.deleteCommand.rssMiB, 0),
    `${fixed(figures.plan.load, 1)} / ${fixed(figures.deleteCommand.load, 1)}`,
  ];
  return {
    title: 'Retention: delete on a large synthetic archive',
    lines: [
      `\`walship delete retain ${POLICY}\` on a synthetic archive (WAL on three timelines, backups spread evenly over 1,000 days, 20 parts each on file storage and 5 on s3rver): the dry run (the plan), then \`--confirm\`.`,
      `The file archive took ${fixed(file.writtenSeconds, 0)} s to write; s3rver runs with test/support/s3rver-fast.ts, whose deletes and listings do not scan whole folders (s3rver as it is lists 100,000 keys in half an hour).`,
      'CPU is user plus system time; load is the 1-minute load average of the 2-core machine, shared with other sessions, when each command ended.',
      '',
      ...markdownTable(
        ['storage', 'WAL objects', 'backups', 'plan s', 'plan CPU s', 'plan peak RSS MiB', 'objects deleted', 'deleted/s', 'delete command s', 'delete peak RSS MiB', 'load (plan / delete)'],
        [row('file', file.archive.segments, 500 / scale, file.figures), row('s3rver', 100_000 / scale, S3_BACKUPS, s3.figures)],
      ),
      '',
      `Listing s3rver's archive alone, before the plan, takes ${fixed(s3.listingSeconds, 1)} s (s3rver-fast reads its folders and every key's metadata on this first listing, as a real store has its index already); the emulator's CPU during the plan is ${fixed(s3.figures.planEmulatorCpuSeconds!, 2)} s.`,
      '',
      ...markdownTable(
        ['s3rver deletes', 'objects/s', 'walship delete vs it'],
        [
          ['walship delete (DeleteObjects, 1000 keys a request, 2 at once)', fixed(rate(s3.figures), 0), '1.00x'],
          ['one DeleteObject per key, 16 at once', fixed(s3.parallel, 0), ratio(rate(s3.figures), s3.parallel)],
          ['one DeleteObject per key, one after another', fixed(s3.sequential, 0), ratio(rate(s3.figures), s3.sequential)],
        ],
      ),
    ],
  };
}
