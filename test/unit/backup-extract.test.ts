// Extraction never writes outside the destination, whatever the archive says.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { extractTar, safeMemberPath, UnsafeArchiveError } from '../../src/backup/extract.ts';
import { tarArchive, type TestMember } from '../support/tar.ts';

describe('safe extraction', () => {
  let root: string;
  let counter = 0;
  before(() => (root = mkdtempSync(join(tmpdir(), 'walship-extract-'))));
  after(() => rmSync(root, { recursive: true, force: true }));

  function destination(): string {
    const path = join(root, `dest${counter++}`, 'data');
    mkdirSync(path, { recursive: true });
    return path;
  }

  async function extract(members: TestMember[], into: string, deferred?: Set<string>) {
    return extractTar((async function* () { yield tarArchive(members); })(), into, { deferred });
  }

  it('normalizes harmless names and refuses escaping ones', () => {
    assert.equal(safeMemberPath('./base/1/'), 'base/1');
    assert.equal(safeMemberPath('global//pg_control'), 'global/pg_control');
    for (const name of ['../etc/passwd', 'base/../../x', '/etc/passwd', '', './', 'a\0b']) {
      assert.throws(() => safeMemberPath(name), UnsafeArchiveError, name);
    }
  });

  it('extracts files, directories and inner links with owner-only modes', async () => {
    const into = destination();
    const result = await extract([
      { name: 'base/', type: '5', mode: 0o755 },
      { name: 'base/1/1259', content: 'relation', mode: 0o644 },
      { name: 'pg_wal/', type: '5' },
      { name: 'wal', type: '2', linkName: 'pg_wal' },
      { name: 'global/pg_control', content: 'control' },
    ], into, new Set(['global/pg_control']));
    assert.equal(readFileSync(join(into, 'base/1/1259'), 'utf8'), 'relation');
    assert.equal(lstatSync(join(into, 'base/1/1259')).mode & 0o777, 0o600);
    assert.equal(lstatSync(join(into, 'base')).mode & 0o777, 0o700);
    assert.equal(readlinkSync(join(into, 'wal')), 'pg_wal');
    assert.equal(result.files, 2);
    assert.ok(result.directories.has('base/1'));
    // The deferred member waits under a hidden name for the caller.
    assert.ok(!existsSync(join(into, 'global/pg_control')));
    assert.equal(result.deferred.length, 1);
    assert.equal(readFileSync(result.deferred[0]!.temporary, 'utf8'), 'control');
  });

  it('refuses ../ members, absolute paths and escaping links, writing nothing outside', async () => {
    const into = destination();
    await assert.rejects(extract([{ name: '../escaped', content: 'x' }], into), /refusing tar member "\.\.\/escaped"/);
    await assert.rejects(extract([{ name: '/tmp/walship-absolute', content: 'x' }], into), /absolute paths/);
    await assert.rejects(extract([{ name: 'link', type: '2', linkName: '/etc' }], into), /could point outside/);
    await assert.rejects(extract([{ name: 'link', type: '2', linkName: '../..' }], into), /could point outside/);
    await assert.rejects(extract([{ name: 'hard', type: '1', linkName: 'base/1' }], into), /hard links/);
    await assert.rejects(extract([{ name: 'fifo', type: '6' }], into), /device files and FIFOs/);
    assert.ok(!existsSync(join(into, '..', 'escaped')));
    assert.ok(!existsSync('/tmp/walship-absolute'));
  });

  it('never writes through a link planted in the destination, nor over an existing file', async () => {
    const into = destination();
    const outside = join(into, '..', 'outside');
    symlinkSync(outside, join(into, 'planted'));
    await assert.rejects(extract([{ name: 'planted', content: 'x' }], into), /already in the destination/);
    assert.ok(!existsSync(outside));
    await assert.rejects(extract([{ name: 'twice', content: 'a' }, { name: 'twice', content: 'b' }], into), /appears twice/);
  });
});
