import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeDirectories } from '../../src/fs/directories.ts';

describe('makeDirectories (mkdir -p without recursive: true)', () => {
  const root = mkdtempSync(join(tmpdir(), 'walship-directories-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('makes every missing level with the mode and tells the first one it made', async () => {
    assert.equal(await makeDirectories(join(root, 'a', 'b', 'c'), 0o700), join(root, 'a'));
    assert.equal(statSync(join(root, 'a', 'b', 'c')).mode & 0o777, 0o700);
    assert.equal(await makeDirectories(join(root, 'a', 'b', 'c'), 0o700), undefined);
    assert.equal(await makeDirectories(join(root, 'a', 'd'), 0o700), join(root, 'a', 'd'));
  });

  it('fails with mkdir\'s error where a level cannot be made, where recursive: true loops for ever', { timeout: 10_000 }, async () => {
    await assert.rejects(makeDirectories('/proc/walship-no-such-directory/cache', 0o700), { code: 'ENOENT' });
    await assert.rejects(makeDirectories(join('/dev/null', 'cache'), 0o700), { code: 'ENOTDIR' });
    await assert.rejects(makeDirectories('/dev/null', 0o700), { code: 'EEXIST' });
  });

  it('the synchronous form fails as well, within a bounded time', () => {
    const script = `import { makeDirectoriesSync } from ${JSON.stringify(new URL('../../src/fs/directories.ts', import.meta.url).href)};
try { makeDirectoriesSync('/proc/walship-no-such-directory', 0o700); } catch (error) { console.log(error.code); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(child.signal, null, 'it hung and was killed');
    assert.equal(child.stdout.trim(), 'ENOENT');
  });
});
