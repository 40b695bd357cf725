/**
 * Where the archiving benchmarks store WAL: a directory on the same file
 * system (WALG_FILE_PREFIX / a posix pgBackRest repository), and s3rver on
 * loopback behind a TLS proxy (WALG_S3_PREFIX / a pgBackRest S3 repository)
 * when this checkout has s3rver and a walship build with the S3 backend. Each archive gets its own name (a directory, or a path
 * in the bucket), so every run starts from an empty archive.
 */
import { type Dirent, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMULATOR_BUCKET, type Emulator, startS3rver } from '../../test/support/emulators.ts';
import { projectRoot } from '../../test/support/paths.ts';
import { giveToPostgres, run } from '../../test/support/processes.ts';
import { startTlsProxy } from '../../test/support/tls-proxy.ts';
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
  /** Names of the files archive `archive` holds, read straight from disk (to check that done means stored). */
  storedNames(archive: string): string[];
  /** CPU seconds the store's server process has used so far, where it is one of ours (s3rver). */
  serverCpuSeconds?(): number;
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
    storedNames: (archive) => filesUnder(pathOf(archive)),
  };
}

/** Names of the files anywhere under `directory`, leaving out hidden ones (temp files). */
function filesUnder(directory: string): string[] {
  return (readdirSync(directory, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => entry.name);
}

/**
 * s3rver on loopback, behind a TLS proxy that walship and pgBackRest both go
 * through, when this checkout has s3rver and the walship build has the S3
 * backend; otherwise the reason it is not measured.
 */
export async function s3Target(context: BenchContext, onCleanup: (cleanup: () => Promise<void>) => void): Promise<Target | string> {
  if (!existsSync(join(projectRoot, 'node_modules', 's3rver', 'bin', 's3rver.js'))) return 's3rver is not installed (node_modules/s3rver)';
  const emulator: Emulator = await startS3rver();
  onCleanup(() => emulator.stop());
  const proxy = await startTlsProxy(postgresDirectory(join(context.root, 'tls')), emulator.port);
  giveToPostgres(proxy.certificate);
  onCleanup(() => proxy.stop());
  const walshipSettings = (archive: string) => ({
    ...emulator.settings(`bench/${archive}`, `https://127.0.0.1:${proxy.port}`),
    WALG_S3_CA_CERT_FILE: proxy.certificate,
  });
  // Archiving a small history file works only with a build that has the S3 backend.
  const history = join(context.root, '00000002.history');
  writeFileSync(history, '1\t0/3000000\tno recovery target specified\n');
  const probe = await run(context.walship, ['wal-push', history], { env: { ...process.env, ...walshipSettings('probe'), WALG_LOG_LEVEL: 'ERROR' } });
  if (probe.code !== 0) return `walship cannot archive to s3rver (wal-push exited ${probe.code}: ${probe.stderr.trim().split('\n')[0]})`;
  context.log(`s3: s3rver on ${emulator.endpoint}, TLS on https://127.0.0.1:${proxy.port}`);
  return {
    name: 's3rver',
    walshipSettings,
    pgbackrestRepository: (archive) => [
      'repo1-type=s3',
      `repo1-s3-bucket=${EMULATOR_BUCKET}`,
      'repo1-s3-endpoint=127.0.0.1',
      `repo1-storage-port=${proxy.port}`,
      'repo1-s3-region=us-east-1',
      'repo1-s3-key=S3RVER',
      'repo1-s3-key-secret=S3RVER',
      'repo1-s3-uri-style=path',
      // pgBackRest 2.45 matches the host against DNS names only, not the certificate's IP address.
      'repo1-storage-verify-tls=n',
      `repo1-path=/pgbackrest/${archive}`,
    ],
    // s3rver keeps each object as a file named after its key: walship's under bench/, pgBackRest's under pgbackrest/.
    storedNames: (archive) =>
      ['bench', 'pgbackrest'].map((root) => join(emulator.objectsDirectory!, root, archive)).filter((directory) => existsSync(directory)).flatMap(filesUnder),
    serverCpuSeconds: () => emulator.cpuSeconds(),
    pgbackrestNote: 's3rver (a Node.js server on the same 2 cores) behind a TLS proxy in the bench process; walship verifies the certificate, pgBackRest 2.45 cannot for an IP address (repo1-storage-verify-tls=n)',
  };
}
