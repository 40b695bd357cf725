/** "Missing" is one answer among file system errors, never a stand-in for the others; and quick state files. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, mock } from 'node:test';
import { readStateFile, replaceFileQuickly } from '../../src/fs/durable.ts';
import { ignoreMissing, isMissing, removeLeftover } from '../../src/fs/missing.ts';

const root = mkdtempSync(join(tmpdir(), 'walship-fs-'));
after(() => rmSync(root, { recursive: true, force: true }));
const file = join(root, 'file');
writeFileSync(file, 'content');

const errorOf = (promise: Promise<unknown>) => promise.then(() => assert.fail('expected an error'), (error: unknown) => error);

/** Runs `action` and returns what it wrote to stderr. */
async function stderrOf(action: () => Promise<unknown>): Promise<string> {
  const written: string[] = [];
  const write = mock.method(process.stderr, 'write', (chunk: string) => written.push(String(chunk)) > 0);
  try {
    await action();
  } finally {
    write.mock.restore();
  }
  return written.join('');
}

describe('isMissing', () => {
  it('is true for a path that does not exist, or under a file', async () => {
    assert.equal(isMissing(await errorOf(stat(join(root, 'absent')))), true);
    assert.equal(isMissing(await errorOf(stat(join(file, 'child')))), true);
  });

  it('is false for every other failure, and for what is not a file system error', async () => {
    assert.equal(isMissing(await errorOf(readFile(root))), false); // EISDIR
    assert.equal(isMissing(Object.assign(new Error('denied'), { code: 'EACCES' })), false);
    assert.equal(isMissing(new Error('no code')), false);
    assert.equal(isMissing(undefined), false);
  });

  it('ignoreMissing answers undefined for a missing file and rethrows anything else', async () => {
    assert.equal(await readFile(join(root, 'absent'), 'utf8').catch(ignoreMissing), undefined);
    assert.equal(await readFile(file, 'utf8').catch(ignoreMissing), 'content');
    await assert.rejects(readFile(root).catch(ignoreMissing), { code: 'EISDIR' });
  });

  it('removeLeftover removes a file, is quiet when it is gone, and reports (never throws) any other failure', async () => {
    const leftover = join(root, 'leftover');
    writeFileSync(leftover, 'x');
    assert.equal(await stderrOf(() => removeLeftover(leftover)), '');
    assert.equal(await stderrOf(() => removeLeftover(leftover)), '');
    const directory = join(root, 'a-directory');
    mkdirSync(directory);
    assert.match(await stderrOf(() => removeLeftover(directory)), new RegExp(`could not remove ${directory}: .*(EISDIR|EPERM)`));
  });
});

describe('quick state files', () => {
  it('replaces a state file whole and leaves no temp file behind', async () => {
    const state = join(root, 'state');
    await replaceFileQuickly(state, 'first');
    await replaceFileQuickly(state, 'second');
    assert.equal(readFileSync(state, 'utf8'), 'second');
    assert.equal(await readStateFile(state), 'second');
    assert.deepEqual(readdirSync(root).filter((name) => name.includes('state')), ['state']);
  });

  it('a failed replace removes its temp file and rejects', async () => {
    const directory = join(root, 'taken');
    mkdirSync(join(directory, 'target'), { recursive: true });
    await assert.rejects(replaceFileQuickly(join(directory, 'target'), 'x'), { code: 'EISDIR' });
    assert.deepEqual(readdirSync(directory), ['target']);
  });

  it('reads a missing state file as absent, quietly, and an unreadable one as absent, reported', async () => {
    assert.equal(await stderrOf(async () => assert.equal(await readStateFile(join(root, 'absent')), undefined)), '');
    assert.match(await stderrOf(async () => assert.equal(await readStateFile(root), undefined)), /could not read .*carrying on without it.*EISDIR/);
  });
});

