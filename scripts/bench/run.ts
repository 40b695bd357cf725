/**
 * The benchmark suite's single entry:
 *   npm run bench -- [--quick] [--rounds N] [--ref REV] [--baseline REV] [--keep] [name ...]
 * With no names it runs every benchmark in BENCHMARKS; names select some
 * (their dependencies come along). Each benchmark returns a markdown section;
 * run.ts prints them, merges them into scripts/bench/results/results.json
 * (sections not run keep their last results), rewrites results/latest.md from
 * it and redraws the chart. To add a benchmark, add a row to BENCHMARKS.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { postgresBin, walshipBinary } from '../../test/support/paths.ts';
import { ensureDebianPackages } from '../lib/system-packages.ts';
import { drawChart } from './chart.ts';
import { type BenchContext, type BenchReport, writeJson } from './common.ts';
import { type ArchiverPeak, benchDrain, benchReplay, benchSustained, type DrainResult, peakReport } from './archiving.ts';
import { benchDump } from './dump.ts';
import { createWalFixture, type WalFixture } from './fixture.ts';
import { benchRetention } from './retention.ts';
import { benchStatus } from './status.ts';
import { fileTarget, s3Target, type Target } from './targets.ts';
import { benchCopy } from './copy.ts';
import { benchWalPush } from './wal-push.ts';

const here = dirname(fileURLToPath(import.meta.url));
const projectRoot = join(here, '..', '..');
const resultsDirectory = join(here, 'results');

/** What benchmarks share within one run: built on first use. */
export interface Shared {
  fixture(): Promise<WalFixture>;
  /** The storage targets to archive to (file, and s3rver when available), and why others are not measured. */
  targets(): Promise<{ targets: Target[]; skipped: string[] }>;
  /** The drain's results: its restorers read the archives it wrote. */
  drain?: DrainResult;
  /** Peak RSS gathered by the archiving benchmarks, for the rss section. */
  peaks: ArchiverPeak[];
  /** Runs at the end of the run (also on failure or Ctrl-C), last registered first: stop servers here. */
  onCleanup(cleanup: () => Promise<void>): void;
}

interface Benchmark {
  name: string;
  summary: string;
  /** Benchmarks that must run first (in this run). */
  needs?: string[];
  /** `.ready` segments the WAL fixture needs for this benchmark (0: no fixture). */
  backlog(quick: boolean): number;
  run(context: BenchContext, shared: Shared): Promise<BenchReport[]>;
}

const BENCHMARKS: Benchmark[] = [
  {
    name: 'wal-push',
    summary: 'foreground time of one wal-push of a 16 MiB segment vs pgbackrest archive-push and zstd -1 + fsync',
    backlog: (quick) => (quick ? 16 : 24),
    run: async (context, shared) => [await benchWalPush(context, await shared.fixture())],
  },
  {
    name: 'drain',
    summary: 'backlog drain rate of 200 .ready segments in a real PostgreSQL, vs pgbackrest archive-push sync and async',
    backlog: (quick) => (quick ? 40 : 200),
    run: async (context, shared) => {
      const { targets, skipped } = await shared.targets();
      shared.drain = await benchDrain(context, await shared.fixture(), targets, skipped);
      shared.peaks.push(...shared.drain.peaks);
      return [shared.drain.report];
    },
  },
  {
    name: 'replay',
    summary: 'recovery replay rate through the drained segments: wal-fetch vs pgbackrest archive-get sync and async',
    needs: ['drain'],
    backlog: (quick) => (quick ? 40 : 200),
    run: async (context, shared) => {
      const { report, peaks } = await benchReplay(context, await shared.fixture(), shared.drain!.restorers);
      shared.peaks.push(...peaks);
      return [report];
    },
  },
  {
    name: 'sustained',
    summary: 'backlog over time under a heavy pgbench write load, per archiver (runs after replay: its checkpoints recycle the backlog)',
    backlog: (quick) => (quick ? 40 : 200),
    run: async (context, shared) => {
      const { report, peaks } = await benchSustained(context, await shared.fixture(), (await shared.targets()).targets);
      shared.peaks.push(...peaks);
      return [report];
    },
  },
  {
    name: 'rss',
    summary: 'peak RSS of the archiving processes (from drain, replay and sustained in the same run)',
    needs: ['drain'],
    backlog: () => 0,
    run: async (_context, shared) => [peakReport(shared.peaks)],
  },
  {
    name: 'copy',
    summary: 'walship copy of a backup and of 200 segments, file storage to s3rver, vs rclone copy; wal-push with a copy configured (last: its backup-push adds WAL to the fixture)',
    backlog: (quick) => (quick ? 40 : 200),
    run: async (context, shared) => {
      const { targets, skipped } = await shared.targets();
      const s3 = targets.find((target) => target.name === 's3rver');
      if (!s3) throw new Error(`copy needs the s3rver target: ${skipped.join('; ')}`);
      return [await benchCopy(context, await shared.fixture(), s3)];
    },
  },
  {
    name: 'dump',
    summary: 'dump-push vs pg_dump -Fc -Z 1 > file, dump-restore vs pg_restore from that file, on a pgbench scale-50 database',
    backlog: () => 0,
    run: async (context) => [await benchDump(context)],
  },
  {
    name: 'retention',
    summary: 'delete retain on a synthetic archive: plan time and RSS over 1,000,000 WAL objects, delete rates on file storage and s3rver',
    backlog: () => 0,
    run: async (context) => [await benchRetention(context)],
  },
  {
    name: 'status',
    summary: 'walship status on a synthetic archive of 100,000 WAL objects and 400 backups: time, CPU and peak RSS on file storage and s3rver',
    backlog: () => 0,
    run: async (context) => [await benchStatus(context)],
  },
];

interface Options {
  quick: boolean;
  keep: boolean;
  rounds: number;
  ref: string | undefined;
  /** Revisions built and measured next to the binary under test, as variants. */
  baselines: string[];
  variants: BenchContext['variants'];
  names: string[];
}

const USAGE = `usage: npm run bench -- [--quick] [--rounds N] [--ref REV] [--baseline REV] [--variant NAME:SETTING=VALUE,...] [--keep] [name ...]

  --quick     fewer repetitions and a 40-segment backlog (about 5 minutes)
  --rounds N  runs per contender of drain, replay and copy, interleaved (default 1)
  --ref REV   benchmark walship built from git revision REV (in a scratch copy)
              instead of dist/walship; WALSHIP_BINARY=PATH picks any binary
  --baseline REV
              also measure walship built from git revision REV, as a variant
              named REV in wal-push, drain, replay, sustained and copy: before and
              after a change in one run (repeatable)
  --variant NAME:SETTING=VALUE,...
              also measure walship with these settings in drain, replay and
              sustained, e.g. --variant c2:WALG_UPLOAD_CONCURRENCY=2 (repeatable)
  --keep      leave the scratch directory (servers stopped) for inspection

benchmarks (all when none is named; dependencies come along):
${BENCHMARKS.map((bench) => `  ${bench.name.padEnd(10)} ${bench.summary}`).join('\n')}`;

function parseVariant(text: string): Options['variants'][number] {
  const match = /^([\w.-]+):((?:[A-Z_][A-Z0-9_]*=[^,\s]*)(?:,[A-Z_][A-Z0-9_]*=[^,\s]*)*)$/.exec(text);
  if (!match) throw new Error(`--variant expects NAME:SETTING=VALUE[,SETTING=VALUE...], not ${text}`);
  return { name: match[1]!, settings: Object.fromEntries(match[2]!.split(',').map((pair) => pair.split('=', 2) as [string, string])) };
}

function parseArguments(argv: string[]): Options {
  const options: Options = { quick: false, keep: false, rounds: 1, ref: undefined, baselines: [], variants: [], names: [] };
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (argument === '--quick') options.quick = true;
    else if (argument === '--keep') options.keep = true;
    else if (argument === '--rounds' || argument === '--ref' || argument === '--baseline' || argument === '--variant') {
      const value = argv[++index];
      if (value === undefined) throw new Error(`${argument} needs a value`);
      if (argument === '--ref') options.ref = value;
      else if (argument === '--baseline') options.baselines.push(value);
      else if (argument === '--variant') options.variants.push(parseVariant(value));
      else if (/^[1-9]\d*$/.test(value)) options.rounds = Number(value);
      else throw new Error(`--rounds expects a positive whole number, not ${value}`);
    } else if (argument === '--help' || argument === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (BENCHMARKS.some((bench) => bench.name === argument)) options.names.push(argument);
    else throw new Error(`unknown benchmark or option ${argument}; known: ${BENCHMARKS.map((bench) => bench.name).join(', ')}`);
  }
  return options;
}

function shell(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Builds walship from git revision `ref` in a scratch copy of the tree (sharing node_modules); returns the binary. */
function buildAtRevision(ref: string, root: string): { binary: string; provenance: string } {
  const commit = execFileSync('git', ['-C', projectRoot, 'rev-parse', '--verify', `${ref}^{commit}`], { encoding: 'utf8' }).trim();
  const tree = join(root, `build-tree-${commit.slice(0, 10)}`);
  mkdirSync(tree, { recursive: true });
  execFileSync('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', projectRoot, commit, tree]);
  symlinkSync(join(projectRoot, 'node_modules'), join(tree, 'node_modules'));
  console.error(`bench: building walship at ${ref} (${commit.slice(0, 10)})`);
  execFileSync(process.execPath, [join(tree, 'scripts/build.ts')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { binary: join(tree, 'dist', 'walship'), provenance: `built from ${ref} = commit ${commit.slice(0, 10)}` };
}

/** The binary under test and where it came from: --ref, WALSHIP_BINARY, or dist/walship (built if missing). */
function binaryUnderTest(ref: string | undefined, root: string): { binary: string; provenance: string } {
  if (ref) return buildAtRevision(ref, root);
  if (process.env.WALSHIP_BINARY) return { binary: walshipBinary, provenance: `WALSHIP_BINARY=${walshipBinary}` };
  if (!existsSync(walshipBinary)) {
    console.error('bench: building dist/walship');
    execFileSync(process.execPath, [join(projectRoot, 'scripts/build.ts')], { stdio: 'inherit' });
  }
  const commit = shell('git', ['-C', projectRoot, 'rev-parse', '--short', 'HEAD']);
  const dirty = shell('git', ['-C', projectRoot, 'status', '--porcelain', '--', 'src']) ? ', src/ had uncommitted changes' : '';
  return { binary: walshipBinary, provenance: `dist/walship of the work tree at commit ${commit}${dirty}` };
}

/** A private copy of a binary, so a rebuild of dist/ during the run changes nothing. */
function snapshotWalship(root: string, { binary, provenance }: { binary: string; provenance: string }, name = 'walship'): { path: string; version: string; provenance: string } {
  const path = join(root, name);
  for (let attempt = 1; ; attempt++) {
    copyFileSync(binary, path);
    chmodSync(path, 0o755);
    const version = shell(path, ['--version']);
    const sha = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
    if (version.startsWith('walship ')) return { path, version, provenance: `${provenance}, sha256 ${sha}` };
    // dist/walship is being rebuilt right now (another process): try again shortly.
    if (attempt === 10) throw new Error(`${walshipBinary} does not run as walship (${version}): run npm run build`);
    execFileSync('sleep', ['3']);
  }
}

function describeMachine(walship: { version: string; provenance: string }, scratch: string): string[] {
  const cpu = cpus();
  return [
    `- machine: ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, ` +
      `${shell('findmnt', ['-no', 'FSTYPE', '-T', scratch])} file system, shared with other jobs (noisy)`,
    `- ${walship.version} (${walship.provenance}); ${shell('pgbackrest', ['version'])}; ${shell('zstd', ['--version']).replace(/^\*+ |,.*$/g, '')}; ` +
      `PostgreSQL ${shell(join(postgresBin, 'postgres'), ['--version']).replace(/^postgres \(PostgreSQL\) /, '')}`,
  ];
}

interface StoredSection {
  name: string;
  generatedAt: string;
  command: string;
  machine: string[];
  report: BenchReport;
}

function loadStoredSections(): StoredSection[] {
  const path = join(resultsDirectory, 'results.json');
  if (!existsSync(path)) return [];
  return (JSON.parse(readFileSync(path, 'utf8')) as { sections: StoredSection[] }).sections;
}

function renderSection(section: StoredSection): string[] {
  return [
    `## ${section.report.title}`,
    '',
    `Measured ${section.generatedAt} with \`${section.command}\`.`,
    ...section.machine,
    '',
    ...section.report.lines,
    '',
  ];
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  const wanted = new Set(options.names.length ? options.names : BENCHMARKS.map((bench) => bench.name));
  for (const bench of [...BENCHMARKS].reverse()) if (wanted.has(bench.name)) for (const need of bench.needs ?? []) wanted.add(need);
  const selected = BENCHMARKS.filter((bench) => wanted.has(bench.name));
  ensureDebianPackages('postgresql-15', 'pgbackrest', 'zstd', 'gnuplot-nox');

  const root = makePostgresOwnedDirectory('walship-bench-');
  const started = Date.now();
  const context: BenchContext = {
    quick: options.quick,
    rounds: options.rounds,
    variants: options.variants,
    walship: '',
    root,
    log: (message) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`),
  };
  const cleanups: (() => Promise<void>)[] = [];
  let fixture: Promise<WalFixture> | undefined;
  let targets: ReturnType<Shared['targets']> | undefined;
  const backlog = Math.max(...selected.map((bench) => bench.backlog(options.quick)));
  const shared: Shared = {
    fixture: () => {
      fixture ??= createWalFixture(context, backlog).then((built) => {
        cleanups.push(() => built.cluster.destroy());
        return built;
      });
      return fixture;
    },
    targets: () => {
      targets ??= s3Target(context, (cleanup) => cleanups.push(cleanup)).then((s3) => {
        if (typeof s3 === 'string') context.log(`s3rver target skipped: ${s3}`);
        return {
          targets: [fileTarget(context), ...(typeof s3 === 'string' ? [] : [s3])],
          skipped: typeof s3 === 'string' ? [`s3rver: ${s3}`] : [],
        };
      });
      return targets;
    },
    peaks: [],
    onCleanup: (cleanup) => cleanups.push(cleanup),
  };
  const stopEverything = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(`bench: cleanup: ${String(error)}`));
    if (!options.keep) rmSync(root, { recursive: true, force: true });
    else console.error(`bench: scratch directory kept: ${root}`);
  };
  process.once('SIGINT', () => void stopEverything().then(() => process.exit(130)));

  try {
    const binary = snapshotWalship(root, binaryUnderTest(options.ref, root));
    context.walship = binary.path;
    const baselines = options.baselines.map((ref, index) => ({ ref, ...snapshotWalship(root, buildAtRevision(ref, root), `walship-baseline-${index}`) }));
    context.variants.unshift(...baselines.map(({ ref, path }) => ({ name: ref, settings: {}, walship: path })));
    const machine = [
      ...describeMachine(binary, root),
      ...baselines.map(({ ref, version, provenance }) => `- baseline [${ref}]: ${version} (${provenance})`),
    ];
    const command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
    context.log(`${selected.map((bench) => bench.name).join(', ')} (${options.quick ? 'quick' : 'full'} mode), scratch ${root}`);

    const sections = loadStoredSections();
    for (const bench of selected) {
      const reports = await bench.run(context, shared);
      reports.forEach((report, index) => {
        const section: StoredSection = {
          name: reports.length > 1 ? `${bench.name}#${index}` : bench.name,
          generatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          command,
          machine,
          report,
        };
        console.log(renderSection(section).join('\n'));
        const existing = sections.findIndex((stored) => stored.name === section.name);
        if (existing >= 0) sections[existing] = section;
        else sections.push(section);
      });
    }
    // Keep the suite's order in the results, whatever order they were measured in.
    const order = (name: string) => BENCHMARKS.findIndex((bench) => bench.name === name.split('#')[0]);
    sections.sort((a, b) => order(a.name) - order(b.name) || a.name.localeCompare(b.name));
    mkdirSync(resultsDirectory, { recursive: true });
    writeJson(join(resultsDirectory, 'results.json'), { sections });
    writeFileSync(
      join(resultsDirectory, 'latest.md'),
      ['# walship benchmark results', '', 'Generated by scripts/bench/run.ts; see ../README.md.', '', ...sections.flatMap(renderSection)].join('\n'),
    );
    const chart = drawChart(
      sections.map((section) => section.report.chart ?? {}),
      join(resultsDirectory, 'bench.png'),
      root,
    );
    context.log(`results: ${join(resultsDirectory, 'latest.md')}${chart ? `, chart ${chart} (${statSync(chart).size} bytes)` : ''}`);
  } finally {
    await stopEverything();
  }
}

await main();
