/**
 * Heavy third-party packages (the cloud SDKs) are bundled apart from walship's
 * own code and embedded in the single executable as assets, each with a V8
 * code cache made at build time. They are compiled only when a command needs
 * them, so every other command starts as fast as a small script: archive_command
 * runs once per WAL file.
 */
import { createRequire } from 'node:module';
import { getAsset, getRawAsset, isSea } from 'node:sea';
import { Script } from 'node:vm';
import { log } from '../log/logger.ts';

/** The CommonJS wrapper the build also uses when it makes the code cache: both must match exactly. */
export function wrapCommonJs(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}

const loaded = new Map<string, unknown>();

export function loadEmbeddedModule(name: string): unknown {
  if (!isSea()) throw new Error(`embedded module ${name} is only available in the single executable`);
  let exports = loaded.get(name);
  if (exports === undefined) {
    const started = performance.now();
    const filename = `walship:${name}.cjs`;
    const script = new Script(wrapCommonJs(getAsset(`${name}.cjs`, 'utf8')), {
      filename,
      cachedData: new Uint8Array(getRawAsset(`${name}.cache`)),
    });
    const evaluate = script.runInThisContext() as (...args: unknown[]) => void;
    const module = { exports: {} as unknown };
    evaluate.call(module.exports, module.exports, createRequire(process.execPath), module, filename, '.');
    exports = module.exports;
    // V8 rejects a cache made under other V8 flags; the build applies walship's (src/util/exit-safety.ts).
    log.debug(`loaded embedded ${name}`, { codeCache: script.cachedDataRejected ? 'rejected' : 'accepted', ms: Math.round(performance.now() - started) });
    loaded.set(name, exports);
  }
  return exports;
}
