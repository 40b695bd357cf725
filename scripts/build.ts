// Builds dist/walship: esbuild bundles src/cli.ts into one CommonJS file, and
// Node's single executable application support injects it (with the zstd-napi
// addon as an asset) into a copy of the pinned Node runtime.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const seaConfig = JSON.parse(readFileSync(join(root, 'pkg.config.json'), 'utf8'));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dist = join(root, 'dist');
// Everything is built in a private staging directory and renamed into dist/ at
// the end, so concurrent builds (parallel test runs) never see each other's halves.
mkdirSync(dist, { recursive: true });
const staging = mkdtempSync(join(dist, '.build-'));
const binary = join(staging, 'walship');
const bundle = join(staging, 'walship.cjs');
const blob = join(staging, 'walship.blob');
const zstdAddon = join(root, seaConfig.assets['zstd-napi.node']);
const zstdAddonHash = createHash('sha256').update(readFileSync(zstdAddon)).digest('hex').slice(0, 16);

/** zstd-napi loads its addon with a require() esbuild cannot bundle: load it from the SEA asset instead. */
const zstdBindingFromAsset: Plugin = {
  name: 'zstd-binding-from-asset',
  setup(context) {
    context.onResolve({ filter: /^\.\.\/binding$/ }, (args) =>
      args.importer.includes(`${'/'}zstd-napi${'/'}`) ? { path: 'zstd-binding', namespace: 'walship' } : undefined,
    );
    context.onLoad({ filter: /^zstd-binding$/, namespace: 'walship' }, () => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'src/compress/zstd-binding.ts'))}).loadZstdBindingFromAsset();`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

try {
  await build({
    entryPoints: [join(root, 'src/cli.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    define: {
      WALSHIP_BUILD_VERSION: JSON.stringify(packageJson.version),
      WALSHIP_ZSTD_ADDON_HASH: JSON.stringify(zstdAddonHash),
    },
    plugins: [zstdBindingFromAsset],
  });

  const stagedSeaConfig = join(staging, 'sea-config.json');
  writeFileSync(stagedSeaConfig, JSON.stringify({ ...seaConfig, main: bundle, output: blob, assets: { 'zstd-napi.node': zstdAddon } }));
  execFileSync(process.execPath, ['--experimental-sea-config', stagedSeaConfig], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  copyFileSync(process.execPath, binary);
  chmodSync(binary, 0o755);
  try {
    execFileSync('strip', ['--strip-all', binary]);
  } catch {
    console.error('build: strip not available, leaving the binary unstripped');
  }
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/postject/dist/cli.js'), binary, 'NODE_SEA_BLOB', blob,
      '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'],
    // postject's ELF writer prints harmless section-name warnings; show its output only on failure.
    { cwd: root, stdio: 'pipe' },
  );
  const version = execFileSync(binary, ['--version']).toString().trim();
  renameSync(bundle, join(dist, 'walship.cjs'));
  renameSync(binary, join(dist, 'walship'));
  console.error(`build: ${join(dist, 'walship')} (${version})`);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
