// The other pairing: Azure Blob storage (azurite) as the main storage and
// file storage as the copy. The copy gets the backup from walship copy and the
// WAL from the forwarder; when the main storage's segments then turn out
// corrupt, a server restored from it recovers to a point in time with
// wal-fetch taking each segment from the copy, and still ends recovery where
// the main storage says the archive ends.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { walKey } from '../../src/archive/layout.ts';
import { Config } from '../../src/config/config.ts';
import { codecFor } from '../../src/stages/compress/codec.ts';
import { type Emulator, startEmulator } from '../support/emulators.ts';
import { libpq } from '../support/libpq.ts';
import { postgresBin, walshipBinary } from '../support/paths.ts';
import { makePostgresOwnedDirectory, PostgresCluster } from '../support/postgres.ts';
import { giveToPostgres, run } from '../support/processes.ts';
import { openConfigured } from '../support/storage.ts';

describe('an Azure archive copied to file storage', () => {
  let emulator: Emulator;
  let root: string;
  let copyArchive: string;
  let mainConfig: string;
  let copyConfig: string;
  let primary: PostgresCluster;
  let restored: PostgresCluster | undefined;

  const walship = (args: string[]) =>
    run(walshipBinary, ['--config', mainConfig, ...args], { asPostgres: true, env: { ...process.env, ...libpq(primary), PATH: `${postgresBin}:${process.env.PATH}` } });

  before(async () => {
    emulator = await startEmulator.azure();
    root = makePostgresOwnedDirectory('walship-copy-cloud-');
    copyArchive = join(root, 'nas');
    mkdirSync(copyArchive);
    giveToPostgres(copyArchive);
    mainConfig = join(root, 'walship.json');
    copyConfig = join(root, 'walship-nas.json');
    writeFileSync(copyConfig, JSON.stringify({ WALG_FILE_PREFIX: copyArchive }));
    writeFileSync(mainConfig, JSON.stringify({ ...emulator.settings('cluster-a'), WALSHIP_COPIES: copyConfig }));
    for (const path of [mainConfig, copyConfig]) giveToPostgres(path);
    primary = await PostgresCluster.init({ settings: { archive_mode: 'on', archive_command: `${walshipBinary} --config ${mainConfig} wal-push %p` } });
    await primary.start();
    await primary.pgbench(['-i', '-s', '1', '-q']);
  });

  after(async () => {
    await restored?.destroy();
    await primary?.destroy();
    await emulator?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('recovers to a point in time through wal-fetch from the copy, where the main storage fails', async () => {
    const pushed = await walship(['backup-push', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const backup = (JSON.parse(pushed.stdout) as { backup_name: string }).backup_name;
    const copied = await walship(['copy']);
    assert.equal(copied.code, 0, copied.stderr);
    assert.match(copied.stderr, /copied \d+ WAL files? .* and 1 backup/);

    await primary.sql('CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 500) g');
    const target = await primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await primary.sql('INSERT INTO marker SELECT g FROM generate_series(501, 700) g');
    const last = await primary.switchAndWaitArchived();
    // The forwarder brings the WAL archived since the copy.
    const deadline = Date.now() + 15_000;
    while (!existsSync(join(copyArchive, walKey(last, codecFor('zstd'))))) {
      assert.ok(Date.now() < deadline, `${last} did not reach the copy`);
      await sleep(100);
    }
    const listed = await run(walshipBinary, ['--config', copyConfig, 'backup-list', '--json'], { asPostgres: true });
    assert.deepEqual((JSON.parse(listed.stdout) as { backup_name: string }[]).map((entry) => entry.backup_name), [backup]);

    const restoreRoot = makePostgresOwnedDirectory('walship-copy-cloud-restore-');
    const dataDir = join(restoreRoot, 'data');
    const fetched = await walship(['backup-fetch', dataDir, 'LATEST', '--recovery-target-time', target, '--recovery-target-action', 'promote']);
    assert.equal(fetched.code, 0, fetched.stderr);
    const recoverySettings = JSON.parse(readFileSync(join(restoreRoot, '.walship-data', 'walship-recovery.json'), 'utf8')) as Record<string, string>;
    assert.equal(recoverySettings.WALSHIP_COPIES, copyConfig, 'the restored server knows the copies');

    // Bit rot in the main storage: every segment since the backup fails its check there.
    const main = await openConfigured(new Config(emulator.settings('cluster-a')));
    let corrupted = 0;
    for await (const object of main.list('wal_005/')) {
      const name = object.key.slice('wal_005/'.length, 'wal_005/'.length + 24);
      if (!/^[0-9A-F]{24}\.zst$/.test(object.key.slice('wal_005/'.length)) || name < backup.slice('base_'.length)) continue;
      const stored = await main.get(object.key);
      const chunks: Buffer[] = [];
      for await (const chunk of stored.body) chunks.push(chunk as Buffer);
      const bytes = Buffer.concat(chunks);
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
      await main.put(object.key, Readable.from([bytes]), { metadata: stored.metadata });
      corrupted++;
    }
    assert.ok(corrupted >= 2, `${corrupted} segments corrupted`);
    restored = await PostgresCluster.adopt(dataDir, restoreRoot, { settings: { archive_mode: 'off' } });
    await restored.start();
    await restored.waitPromoted();
    assert.equal(await restored.sql('SELECT count(*) FROM marker'), '500');
    assert.equal(await restored.sql('SELECT count(*) FROM pgbench_accounts'), '100000');
    const log = readFileSync(restored.logFile, 'utf8');
    // Recovery reads the segments up to the target: all but the newest.
    const fromCopy = log.match(/restored [0-9A-F]{24} from copy .*walship-nas\.json .*: the main storage failed: .* is corrupt/g)?.length ?? 0;
    assert.ok(fromCopy >= corrupted - 1, `${fromCopy} of ${corrupted} corrupt segments restored from the copy:\n${log}`);
  });
});
