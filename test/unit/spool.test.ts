// Where walship's spool goes: next to the data directory, else in the user's
// state directory, the same place in every run; never a surprise.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Config } from '../../src/config/config.ts';
import { ConfigError, WalshipError } from '../../src/errors.ts';
import { createPrefetchRoot, createSpoolDirectory, spoolDirectory, spoolInStateHome, spoolInVarTmp, spoolNextTo, spoolSubdirectory, stateHome } from '../../src/wal/spool.ts';

const scratch = mkdtempSync(join(tmpdir(), 'walship-spool-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `body` with XDG_STATE_HOME set to `value`, as the server's environment would. */
async function withStateHome<T>(value: string, body: () => Promise<T>): Promise<T> {
  const saved = process.env.XDG_STATE_HOME;
  process.env.XDG_STATE_HOME = value;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
  }
}

describe('the spool path rule', () => {
  it('puts the spool next to the data directory, named after it', () => {
    assert.equal(spoolNextTo('/var/lib/postgresql/15/main'), '/var/lib/postgresql/15/.walship-main');
    assert.deepEqual(spoolDirectory(new Config({}), '/srv/pg/restored/'), { dataDirectory: '/srv/pg/restored', configured: undefined });
  });

  it('falls back to one directory per data directory in the state home, the same in every run', () => {
    const fallback = spoolInStateHome('/srv/pg/restored', '/var/lib/postgresql/.local/state');
    assert.match(fallback, /^\/var\/lib\/postgresql\/\.local\/state\/walship\/restored-[0-9a-f]{8}$/);
    assert.equal(spoolInStateHome('/srv/pg/restored', '/var/lib/postgresql/.local/state'), fallback);
    assert.notEqual(spoolInStateHome('/srv/other/restored', '/var/lib/postgresql/.local/state'), fallback);
  });

  it('takes the state home from XDG_STATE_HOME, else the passwd home, which sudo -E or su -p cannot change as they do $HOME', () => {
    assert.equal(stateHome({ XDG_STATE_HOME: '/run/state', HOME: '/root' }, '/var/lib/postgresql'), '/run/state');
    assert.equal(stateHome({ XDG_STATE_HOME: 'relative/state', HOME: '/root' }, '/var/lib/postgresql'), '/var/lib/postgresql/.local/state');
    assert.equal(stateHome({ HOME: '/home/x' }, undefined), '/home/x/.local/state');
    assert.equal(stateHome({}, undefined), undefined);
  });

  it('uses WALSHIP_SPOOL_DIR as given, and only an absolute one', () => {
    assert.equal(spoolDirectory(new Config({ WALSHIP_SPOOL_DIR: '/var/spool/walship' }), '/pg/main').configured, '/var/spool/walship');
    assert.throws(() => spoolDirectory(new Config({ WALSHIP_SPOOL_DIR: 'spool' }), '/pg/main'), ConfigError);
  });
});

describe('creating the spool', () => {
  it('creates the spool next to the data directory, mode 0700', async () => {
    const dataDirectory = join(scratch, 'next-to', 'data');
    const created = await createSpoolDirectory({ dataDirectory, configured: undefined }, 'prefetch');
    assert.equal(created, join(scratch, 'next-to', '.walship-data', 'prefetch'));
    assert.equal(statSync(created).mode & 0o777, 0o700);
  });

  it('falls back to the state home when the place next to the data directory cannot be created', async () => {
    const parent = join(scratch, 'blocked');
    mkdirSync(parent);
    writeFileSync(join(parent, '.walship-data'), ''); // a file in the way, as an unwritable parent would be for the PostgreSQL user
    const state = join(scratch, 'state');
    const dataDirectory = join(parent, 'data');
    const created = await withStateHome(state, () => createSpoolDirectory({ dataDirectory, configured: undefined }, 'prefetch'));
    assert.equal(created, join(spoolInStateHome(dataDirectory, state), 'prefetch'));
    assert.equal(statSync(join(state, 'walship')).mode & 0o777, 0o700);
  });

  it('says where it tried when no place works, and optional features carry on without it', async () => {
    const blocker = join(scratch, 'blocker');
    writeFileSync(blocker, '');
    const spool = { dataDirectory: join(blocker, 'data'), configured: undefined };
    await withStateHome(join(blocker, 'state'), async () => {
      await assert.rejects(createSpoolDirectory(spool, 'prefetch'), (error: Error) => {
        assert.ok(error instanceof WalshipError);
        assert.match(error.message, /cannot create .*\/blocker\/\.walship-data\/prefetch \(ENOTDIR\) or .*\/blocker\/state\/walship\/data-[0-9a-f]{8}\/prefetch \(ENOTDIR\); set WALSHIP_SPOOL_DIR/);
        return true;
      });
      assert.equal(await spoolSubdirectory(spool, 'prefetch'), undefined);
    });
    await assert.rejects(createSpoolDirectory({ dataDirectory: '/pg/main', configured: join(blocker, 'spool') }), /cannot create .*blocker\/spool \(ENOTDIR\); set WALSHIP_SPOOL_DIR/);
  });
});

describe('the prefetch root', () => {
  it("is the spool's prefetch/, else a private per-user directory under /var/tmp, never a shared one", async () => {
    const blocker = join(scratch, 'prefetch-blocker');
    writeFileSync(blocker, '');
    const dataDirectory = join(blocker, 'data');
    const spool = { dataDirectory, configured: undefined };
    const fallback = spoolInVarTmp(dataDirectory, process.getuid!());
    try {
      await withStateHome(join(blocker, 'state'), async () => {
        assert.equal(await createPrefetchRoot(spool, undefined), fallback);
        assert.equal(statSync(fallback).mode & 0o777, 0o700);
        // Another user could have made it writable to all: then it is refused, not used.
        chmodSync(join(fallback, '..'), 0o777);
        await assert.rejects(createPrefetchRoot(spool, undefined), /cannot create .*\/var\/tmp\/walship-\d+\/data-[0-9a-f]{8} \(EPERM\); set WALSHIP_PREFETCH_DIR/);
      });
    } finally {
      chmodSync(join(fallback, '..'), 0o700);
      rmSync(fallback, { recursive: true, force: true });
    }
    const next = join(scratch, 'prefetch-next', 'data');
    assert.equal(await createPrefetchRoot({ dataDirectory: next, configured: undefined }, undefined), join(scratch, 'prefetch-next', '.walship-data', 'prefetch'));
    assert.equal(await createPrefetchRoot(spool, join(scratch, 'chosen')), join(scratch, 'chosen'));
  });
});
