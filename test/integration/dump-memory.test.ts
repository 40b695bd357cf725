// dump-push streams: dumping a database larger than 1 GiB keeps walship's
// peak RSS under 150 MB. (Restoring dumps is tested in dump.test.ts.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { run } from '../support/processes.ts';

const RSS_LIMIT_MB = 150;

/** Runs walship to its end, sampling its peak RSS (VmHWM) until it exits. */
async function runSampled(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; peakMB: number }> {
  const child = spawn(walshipBinary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let peakKiB = 0;
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
    } catch {
      // exited between the check and the read
    }
    await sleep(25);
  }
  return { code: await exited, stderr, peakMB: (peakKiB * 1024) / 1e6 };
}

describe('dump-push memory', () => {
  let archive: string;
  let cluster: PostgresCluster;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    archive = makePostgresOwnedDirectory('walship-dump-memory-');
    cluster = await PostgresCluster.init({ settings: { shared_buffers: '128MB', maintenance_work_mem: '256MB' } });
    await cluster.start();
    await cluster.sql('CREATE DATABASE big');
    // Unlogged: no WAL to write for 1.2 GiB of rows; pg_dump still dumps their data.
    await cluster.sql("CREATE UNLOGGED TABLE rows AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, 4000000) g", 'big');
    env = { ...process.env, ...libpq(cluster), WALG_FILE_PREFIX: archive, PATH: `${postgresBin}:${process.env.PATH}` };
  });

  after(async () => {
    await cluster?.destroy();
    rmSync(archive, { recursive: true, force: true });
  });

  it(`dumps a database larger than 1 GiB with a peak RSS under ${RSS_LIMIT_MB} MB`, async () => {
    const size = Number(await cluster.sql("SELECT pg_database_size('big')"));
    assert.ok(size > 2 ** 30, `the database is ${size} bytes`);
    const pushed = await runSampled(['dump-push', '--dbname', 'big'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.ok(pushed.peakMB > 0 && pushed.peakMB < RSS_LIMIT_MB, `peak RSS ${pushed.peakMB.toFixed(0)} MB`);
    console.log(`dump-push of ${(size / 2 ** 30).toFixed(2)} GiB: peak RSS ${pushed.peakMB.toFixed(0)} MB; ${pushed.stderr.trim()}`);

    const [set] = JSON.parse((await run(walshipBinary, ['dump-list', '--json'], { env })).stdout) as { databases: { uncompressed_size: number }[] }[];
    assert.ok(set!.databases[0]!.uncompressed_size > 2 ** 30);
  });
});
