// The test command: type-check, build dist/walship, then run every test
// (unit tests and integration tests against real PostgreSQL and the binary)
// with node's test runner. Extra arguments select test files.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAIN_THREAD_COMPILATION } from '../src/util/exit-safety.ts';
import { ensureDebianPackages } from './lib/system-packages.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (title: string) => console.error(`\n== ${title}`);

ensureDebianPackages('postgresql-15', 'python3-nacl', 'lz4', 'xz-utils', 'prometheus');

step('type check (tsc)');
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root, '--noEmit'], { stdio: 'inherit' });

step('build dist/walship');
execFileSync(process.execPath, [join(root, 'scripts/build.ts')], { stdio: 'inherit' });

step('tests');
const selected = process.argv.slice(2);
// The test processes compile on their main thread, as walship does, so none of
// them can hang at exit; the runner passes these flags on.
const result = spawnSync(
  process.execPath,
  [...MAIN_THREAD_COMPILATION, '--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...(selected.length ? selected : ['test/**/*.test.ts'])],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
