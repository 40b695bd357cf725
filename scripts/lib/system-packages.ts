// Installs the Debian packages a script needs (PostgreSQL 15, pgBackRest)
// when they are missing, so the README's commands work on a fresh machine.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const packages = {
  'postgresql-15': '/usr/lib/postgresql/15/bin/initdb',
  pgbackrest: '/usr/bin/pgbackrest',
  zstd: '/usr/bin/zstd',
  'gnuplot-nox': '/usr/bin/gnuplot',
  rclone: '/usr/bin/rclone',
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
