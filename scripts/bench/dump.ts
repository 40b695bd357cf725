/**
 * Logical dumps: `walship dump-push` next to `pg_dump -Fc -Z 1 -f file`
 * (pg_dump's own gzip, level 1), and `walship dump-restore` (streamed from
 * file storage) next to `pg_restore` from the local file, on a pgbench
 * database, in the same run. Every contender runs as the postgres OS user
 * under GNU time (peak RSS), alternating round by round; figures are medians.
 * Each variant (--baseline REV, --variant NAME:SETTING=VALUE) adds its own
 * dump-push and dump-restore, into an archive of its own.
 *
 *   npm run bench -- dump          (scale 50; --quick: scale 10)
 */
import { execFileSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { PostgresCluster } from '../../src/postgres/cluster.ts';
import { libpq } from '../../test/support/libpq.ts';
import { postgresBin } from '../../test/support/paths.ts';
import { LOCAL_CLUSTER, makePostgresOwnedDirectory } from '../../test/support/postgres.ts';
import { type BenchContext, type BenchReport, markdownTable, median, ratio, rotated, serverEnvironment, timeShell } from './common.ts';

interface Contender {
  name: string;
  kind: 'dump' | 'restore';
  /** The command, run with /bin/sh as postgres; the restore target is dropped first. */
  command: string;
  /** A walship contender's settings and archive (the peers have neither). */
  walship?: { settings: Record<string, string>; archive: string };
}

export async function benchDump(context: BenchContext): Promise<BenchReport> {
  const scale = context.quick ? 10 : 50;
  const rounds = Math.max(context.rounds, context.quick ? 1 : 3);
  const walships = [{ name: '', settings: {}, walship: context.walship }, ...context.variants].map((variant) => ({
    label: variant.name ? `walship [${variant.name}]` : 'walship',
    binary: variant.walship ?? context.walship,
    settings: variant.settings,
    archive: makePostgresOwnedDirectory('walship-bench-dumps-'),
  }));
  const file = join(context.root, 'bench.dump');
  const cluster = await PostgresCluster.init({ ...LOCAL_CLUSTER, settings: { checkpoint_timeout: '30min', max_wal_size: '4GB' } });
  try {
    await cluster.start();
    await cluster.sql('CREATE DATABASE bench');
    context.log(`dump: pgbench -i -s ${scale}`);
    await cluster.client('pgbench', ['-i', '-s', String(scale), '-q', 'bench']);
    const size = Number(await cluster.sql("SELECT pg_database_size('bench')"));
    const env = serverEnvironment({ ...libpq(cluster), PATH: `${postgresBin}:/usr/bin:/bin` });
    const fresh = 'dropdb --if-exists restored';
    const contenders: Contender[] = [
      { name: 'pg_dump -Fc -Z 1 -f file', kind: 'dump', command: `rm -f ${file} && pg_dump -Fc -Z 1 -d bench -f ${file}` },
      ...walships.map(({ label, binary, settings, archive }) => ({ name: `${label} dump-push`, kind: 'dump' as const, command: `${binary} dump-push --dbname bench`, walship: { settings, archive } })),
      { name: 'pg_restore -d db file', kind: 'restore', command: `${fresh} && createdb restored && pg_restore --exit-on-error -d restored ${file}` },
      ...walships.map(({ label, binary, settings, archive }) => ({
        name: `${label} dump-restore`,
        kind: 'restore' as const,
        // The newest set's name is looked up before the clock starts, as pg_restore is handed its file's name.
        command: `${fresh} && ${binary} dump-restore "$DUMP_NAME" bench --create --target-dbname restored`,
        walship: { settings, archive },
      })),
    ];
    const environment = (contender: Contender) => (contender.walship ? { ...env, ...contender.walship.settings, WALG_FILE_PREFIX: contender.walship.archive } : env);
    const newestSet = (contender: Contender) =>
      (JSON.parse(execFileSync(context.walship, ['dump-list', '--json'], { env: environment(contender), encoding: 'utf8' })) as { dump_name: string; databases: { uncompressed_size: number; compressed_size: number }[] }[]).at(-1)!;
    const runs = new Map<string, { ms: number; cpuMs: number; rssMiB: number }[]>(contenders.map((contender) => [contender.name, []]));
    for (let round = 0; round < rounds; round++) {
      // Dumps first (the restores read what they wrote), each group rotated so none always goes first.
      for (const kind of ['dump', 'restore'] as const) {
        for (const contender of rotated(contenders.filter((candidate) => candidate.kind === kind), round)) {
          const restoring: Record<string, string> = contender.kind === 'restore' && contender.walship ? { DUMP_NAME: newestSet(contender).dump_name } : {};
          const measured = await timeShell(contender.command, { cwd: context.root, env: { ...environment(contender), ...restoring }, scratch: context.root });
          if (measured.code !== 0) throw new Error(`${contender.command} exited ${measured.code}: ${measured.stderr}`);
          runs.get(contender.name)!.push({ ms: measured.ms, cpuMs: measured.cpuMs, rssMiB: measured.maxRssKiB / 1024 });
          context.log(`dump round ${round + 1}: ${contender.name}: ${(measured.ms / 1000).toFixed(2)} s, CPU ${(measured.cpuMs / 1000).toFixed(2)} s, load ${loadavg()[0]!.toFixed(1)}`);
        }
      }
    }
    const storedSizes = new Map(
      contenders.flatMap((contender) => {
        if (contender.kind !== 'dump' || !contender.walship) return [];
        return [[contender.name, newestSet(contender).databases[0]!] as const];
      }),
    );
    const uncompressed = [...storedSizes.values()][0]!.uncompressed_size;
    const pgDumpBytes = statSync(file).size;
    const MiB = 2 ** 20;
    const rows = contenders.map((contender) => {
      const times = runs.get(contender.name)!;
      const ms = median(times.map((run) => run.ms));
      const baseline = median(runs.get(contender.kind === 'dump' ? 'pg_dump -Fc -Z 1 -f file' : 'pg_restore -d db file')!.map((run) => run.ms));
      const output = contender.kind === 'restore' ? '' : `${((storedSizes.get(contender.name)?.compressed_size ?? pgDumpBytes) / MiB).toFixed(1)} MiB`;
      return [contender.name, `${(ms / 1000).toFixed(2)} s`, `${(median(times.map((run) => run.cpuMs)) / 1000).toFixed(2)} s`, `${(uncompressed / MiB / (ms / 1000)).toFixed(0)} MiB/s`, ratio(baseline, ms), output, `${Math.max(...times.map((run) => run.rssMiB)).toFixed(0)} MiB`];
    });
    return {
      title: 'Logical dumps: dump-push vs pg_dump -Fc -Z 1, dump-restore vs pg_restore',
      lines: [
        `pgbench scale ${scale} in database bench (${(size / MiB).toFixed(0)} MiB on disk; its uncompressed pg_dump -Fc file is ${(uncompressed / MiB).toFixed(0)} MiB),`,
        `${rounds} rounds, medians; throughput = the uncompressed dump file's size / wall time; ratio = against pg_dump -Z 1 (dumps) or pg_restore from its file (restores).`,
        'walship dump-push: pg_dump -Fc -Z 0 compressed with zstd 1 into file storage, fsynced; dump-restore: streamed from storage into pg_restore in one transaction, database created first.',
        '',
        `load average ${loadavg().map((load) => load.toFixed(1)).join(' ')} at the end; CPU = user + system of the contender's processes (pg_dump and walship, pg_restore; not the server's backend), median.`,
        '',
        ...markdownTable(['contender', 'time', 'CPU', 'throughput', 'ratio', 'output', 'peak RSS'], rows),
      ],
    };
  } finally {
    await cluster.destroy();
    for (const { archive } of walships) rmSync(archive, { recursive: true, force: true });
  }
}
