// Installs the Debian packages a script needs (PostgreSQL 15, pgBackRest, the libsodium reference,
// the lz4 and xz tools that make WAL-G's formats, promtool) when they are missing, so the README's commands work on a fresh machine.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const packages = {
  'postgresql-15': '/usr/lib/postgresql/15/bin/initdb',
  pgbackrest: '/usr/bin/pgbackrest',
  zstd: '/usr/bin/zstd',
  lz4: '/usr/bin/lz4',
  'xz-utils': '/usr/bin/xz',
  'gnuplot-nox': '/usr/bin/gnuplot',
  rclone: '/usr/bin/rclone',
  strace: '/usr/bin/strace',
  'linux-perf': '/usr/bin/perf',
  // promtool: the tests check the shipped alert rules and status's Prometheus output with it.
  prometheus: '/usr/bin/promtool',
  // libsodium's own secretstream for Debian's /usr/bin/python3: the tests' independent reference.
  'python3-nacl': '/usr/lib/python3/dist-packages/nacl/bindings/crypto_secretstream.py',
} as const;

export function ensureDebianPackages(...names: (keyof typeof packages)[]): void {
  const missing = names.filter((name) => !existsSync(packages[name]));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages: ${missing.join(' ')}; install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  console.error(`installing ${missing.join(' ')} with apt-get...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env });
}
