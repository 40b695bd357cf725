// Builds dist/walship: esbuild bundles src/cli.ts into one CommonJS file, and
// Node's single executable application support injects it (with the native
// addons of zstd-napi, sodium-native and lzma-native as assets) into a copy of the pinned Node runtime.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { Agent as HttpAgent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Script } from 'node:vm';
import { createRequire } from 'node:module';
import { wrapCommonJs } from '../src/sea/embedded-module.ts';
import { MAIN_THREAD_COMPILATION } from '../src/util/exit-safety.ts';
import { BOUNDED_YOUNG_GENERATION } from '../src/util/memory.ts';
import { setFlagsFromString } from 'node:v8';

// The binary starts with these V8 flags (its execArgv below), and V8 accepts a
// code cache only if it was made under the same flag values: this process
// makes the embedded modules' caches, the SEA step the main script's.
const V8_FLAGS = [...MAIN_THREAD_COMPILATION, ...BOUNDED_YOUNG_GENERATION];
for (const flag of V8_FLAGS) setFlagsFromString(flag);

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
/** The embedded native addons: asset name to file, and the start of each one's SHA-256 (its cache file's name). */
const addonFiles: Record<string, string> = Object.fromEntries(Object.entries(seaConfig.assets as Record<string, string>).map(([asset, path]) => [asset, join(root, path)]));
const addonHashes = Object.fromEntries(Object.entries(addonFiles).map(([asset, path]) => [asset, createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)]));

/**
 * Which import of which package loads a native addon, and the asset that replaces it:
 * the addon itself, or (`loader`) a function that returns it, as node-gyp-build is.
 */
const addonImports: { asset: string; package: string; paths: RegExp; loader?: true }[] = [
  // zstd-napi's own `require('../binding')`, and walship's import of zstd-napi/binding.js.
  { asset: 'zstd-napi.node', package: 'zstd-napi', paths: /^(\.\.\/binding|zstd-napi\/binding\.js)$/ },
  // sodium-native's `require('./binding')`, which finds its prebuilt addon on disk.
  { asset: 'sodium-native.node', package: 'sodium-native', paths: /^\.\/binding$/ },
  // lzma-native's `require('node-gyp-build')(__dirname)`, which searches the file system.
  { asset: 'lzma-native.node', package: 'lzma-native', paths: /^node-gyp-build$/, loader: true },
];

/** The packages load their addons with a require() esbuild cannot bundle: load them from the SEA assets instead. */
const addonsFromAssets: Plugin = {
  name: 'addons-from-assets',
  setup(context) {
    for (const { asset, package: name, paths, loader } of addonImports) {
      context.onResolve({ filter: paths }, (args) =>
        args.path.startsWith(`${name}/`) || args.importer.includes(`/node_modules/${name}/`)
          ? { path: asset, namespace: loader ? 'walship-addon-loader' : 'walship-addon' }
          : undefined,
      );
    }
    const load = (asset: string) => `require(${JSON.stringify(join(root, 'src/sea/native-addon.ts'))}).loadAddonFromAsset(${JSON.stringify(asset)})`;
    context.onLoad({ filter: /.*/, namespace: 'walship-addon' }, (args) => ({ contents: `module.exports = ${load(args.path)};`, loader: 'js', resolveDir: root }));
    context.onLoad({ filter: /.*/, namespace: 'walship-addon-loader' }, (args) => ({ contents: `module.exports = () => ${load(args.path)};`, loader: 'js', resolveDir: root }));
  },
};

interface EmbeddedGroup {
  module: string;
  esModules?: true;
  /** Runs the group's request path once before its code cache is made, so the cache holds that code compiled too. */
  warmUp?: (exports: never) => Promise<void>;
}

/**
 * The cloud SDKs, bundled apart and embedded as assets (see src/sea/embedded-module.ts).
 * Each group is one module walship imports (a package, or a file of walship's
 * that re-exports what it uses) and becomes one bundle. `esModules` bundles
 * from the packages' ES modules, so esbuild drops every export the group's
 * module does not name: for the AWS SDK, all of the S3 client's commands but
 * the dozen src/storage/s3.ts sends.
 */
const embeddedGroups: Record<string, EmbeddedGroup> = {
  aws: { module: join(root, 'src/storage/s3-sdk.ts'), esModules: true, warmUp: sendEachS3Request },
  gcs: { module: '@google-cloud/storage' },
  azure: { module: '@azure/storage-blob' },
};
const groupOfModule = new Map(Object.entries(embeddedGroups).map(([group, { module }]) => [module, group]));

const sdksFromAssets: Plugin = {
  name: 'sdks-from-assets',
  setup(context) {
    context.onResolve({ filter: /^@|\/s3-sdk\.ts$/ }, (args) => {
      if (args.namespace !== 'file' || args.importer.includes('/node_modules/')) return undefined;
      const group = groupOfModule.get(args.path.startsWith('.') ? join(dirname(args.importer), args.path) : args.path);
      return group ? { path: group, namespace: 'walship-embedded' } : undefined;
    });
    context.onLoad({ filter: /.*/, namespace: 'walship-embedded' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'src/sea/embedded-module.ts'))}).loadEmbeddedModule(${JSON.stringify(args.path)});`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

/** Both bundles are CommonJS for Node 24, which is what a single executable runs. */
const commonJsBundle = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
} as const;

/** Bundles one SDK group and makes its code cache by evaluating it once, as the binary will. */
async function buildEmbeddedGroup(group: string, { module: entry, esModules, warmUp }: EmbeddedGroup): Promise<Record<string, string>> {
  const bundlePath = join(staging, `${group}.cjs`);
  await build({
    stdin: { contents: `export * from ${JSON.stringify(entry)};`, resolveDir: root, loader: 'js' },
    outfile: bundlePath,
    ...commonJsBundle,
    // An ES module's import() of a Node built-in stays import() in CommonJS, which a vm Script cannot run: esbuild makes it a require().
    ...(esModules ? { mainFields: ['module', 'main'], supported: { 'dynamic-import': false } } : {}),
  });
  const script = new Script(wrapCommonJs(readFileSync(bundlePath, 'utf8')), { filename: `walship:${group}.cjs` });
  const module = { exports: {} };
  (script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(bundlePath), module, bundlePath, staging);
  await warmUp?.(module.exports as never);
  const cachePath = join(staging, `${group}.cache`);
  writeFileSync(cachePath, script.createCachedData());
  return { [`${group}.cjs`]: bundlePath, [`${group}.cache`]: cachePath };
}

/**
 * V8 compiles a function when it first runs, and a code cache holds only the
 * functions compiled by the time it is made: without this, every command
 * that reaches S3 compiles the SDK's whole request path (middleware,
 * signing, checksums, XML) on its first request. So the build sends one of
 * each kind of request s3.ts makes (a PUT, a HEAD of a missing key, a GET,
 * a listing) to a responder on loopback that answers as S3 does.
 */
async function sendEachS3Request(sdk: typeof import('../src/storage/s3-sdk.ts')): Promise<void> {
  const listing = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>build</Name><Prefix>k</Prefix>'
    + '<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>key</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>'
    + '<ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>';
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const headers = { ETag: '"e"', 'Last-Modified': 'Thu, 01 Jan 2026 00:00:00 GMT' };
      if (request.method === 'HEAD') response.writeHead(404).end();
      else if (request.url?.includes('list-type=2')) response.writeHead(200, { 'Content-Type': 'application/xml' }).end(listing);
      else if (request.method === 'GET') response.writeHead(200, { ...headers, 'Content-Length': '1' }).end('x');
      else response.writeHead(200, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new sdk.S3Client({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'build', secretAccessKey: 'build' },
    maxAttempts: 1,
    requestHandler: new sdk.NodeHttpHandler({ httpAgent: new HttpAgent({ keepAlive: true }) }),
  });
  try {
    const target = { Bucket: 'build', Key: 'key' };
    await client.send(new sdk.PutObjectCommand({ ...target, Body: Buffer.from('x'), ContentLength: 1, ChecksumAlgorithm: 'CRC32', IfNoneMatch: '*' }));
    await client.send(new sdk.HeadObjectCommand(target)).then(
      () => Promise.reject(new Error('build: the warm-up HEAD should have been answered 404')),
      (error: unknown) => (error instanceof sdk.S3ServiceException ? undefined : Promise.reject(error)),
    );
    await (await client.send(new sdk.GetObjectCommand(target))).Body!.transformToByteArray();
    await client.send(new sdk.ListObjectsV2Command({ Bucket: 'build', Prefix: 'k' }));
  } finally {
    client.destroy();
    server.close();
  }
}

try {
  const embeddedAssets: Record<string, string> = {};
  for (const [group, spec] of Object.entries(embeddedGroups)) Object.assign(embeddedAssets, await buildEmbeddedGroup(group, spec));

  await build({
    entryPoints: [join(root, 'src/cli.ts')],
    outfile: bundle,
    ...commonJsBundle,
    define: {
      WALSHIP_BUILD_VERSION: JSON.stringify(packageJson.version),
      WALSHIP_ADDON_HASHES: JSON.stringify(addonHashes),
    },
    plugins: [addonsFromAssets, sdksFromAssets],
  });

  const stagedSeaConfig = join(staging, 'sea-config.json');
  writeFileSync(stagedSeaConfig, JSON.stringify({ ...seaConfig, main: bundle, output: blob, execArgv: V8_FLAGS, assets: { ...addonFiles, ...embeddedAssets } }));
  execFileSync(process.execPath, [...V8_FLAGS, '--experimental-sea-config', stagedSeaConfig], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
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
