/**
 * Where the archiving benchmarks store WAL: a directory on the same file
 * system (WALG_FILE_PREFIX / a posix pgBackRest repository), and s3rver on
 * loopback (WALG_S3_PREFIX) when this checkout has s3rver and a walship build
 * with the S3 backend. Each archive gets its own name (a directory, or a path
 * in the bucket), so every run starts from an empty archive.
 */
import { type Dirent, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { projectRoot } from '../../test/support/paths.ts';
import { run } from '../../test/support/processes.ts';
import { type BenchContext, postgresDirectory } from './common.ts';
import { posixRepository } from './pgbackrest.ts';

export interface Target {
  name: string;
  /** walship's settings for a new archive called `archive`. */
  walshipSettings(archive: string): Record<string, string>;
  /** pgBackRest's repo1-* options for a new repository called `archive`; undefined when pgBackRest is not compared here. */
  pgbackrestRepository?(archive: string): string[];
  /** Why pgBackRest is not compared on this target, if it is not. */
  pgbackrestNote?: string;
  /** Names of the files archive `archive` holds, where the bench can read them directly. */
  storedNames?(archive: string): string[];
}

/** Prefixes the settings to a command, as `NAME=value ... command` for `/bin/sh -c`. */
export function withSettings(settings: Record<string, string>, command: string): string {
  return [...Object.entries(settings).map(([name, value]) => `${name}=${value}`), command].join(' ');
}

export function fileTarget(context: BenchContext): Target {
  const pathOf = (archive: string) => join(context.root, 'archives', archive);
  postgresDirectory(join(context.root, 'archives'));
  return {
    name: 'file',
    walshipSettings: (archive) => ({ WALG_FILE_PREFIX: postgresDirectory(pathOf(archive)) }),
    pgbackrestRepository: (archive) => posixRepository(postgresDirectory(pathOf(archive))),
    storedNames: (archive) =>
      (readdirSync(pathOf(archive), { recursive: true, withFileTypes: true }) as Dirent[])
        .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
        .map((entry) => entry.name),
  };
}

/**
 * s3rver on loopback, when available; otherwise the reason it is not.
 * pgBackRest's S3 client always speaks TLS, which s3rver (as the test support
 * starts it) does not, so on S3 walship is measured alone for now.
 */
export async function s3Target(context: BenchContext, onCleanup: (cleanup: () => Promise<void>) => void): Promise<Target | string> {
  if (!existsSync(join(projectRoot, 'node_modules', 's3rver', 'bin', 's3rver.js'))) return 's3rver is not installed (node_modules/s3rver)';
  const emulator: Emulator = await startS3rver();
  onCleanup(() => emulator.stop());
  // Archiving a small history file works only with a build that has the S3 backend.
  const history = join(context.root, '00000002.history');
  writeFileSync(history, '1\t0/3000000\tno recovery target specified\n');
  const probe = await run(context.walship, ['wal-push', history], { env: { ...process.env, ...emulator.settings('probe'), WALG_LOG_LEVEL: 'ERROR' } });
  if (probe.code !== 0) return `walship cannot archive to s3rver (wal-push exited ${probe.code}: ${probe.stderr.trim().split('\n')[0]})`;
  context.log(`s3: s3rver on ${emulator.endpoint}`);
  return {
    name: 's3rver',
    walshipSettings: (archive) => emulator.settings(`bench/${archive}`),
    pgbackrestNote: "pgBackRest's S3 client requires TLS; s3rver here serves plain HTTP",
  };
}
