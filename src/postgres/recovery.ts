/**
 * What kind of recovery the server is in, read from the signal files in its
 * data directory (restore_command's working directory).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type RecoveryMode = 'standby' | 'targeted' | 'none';

export function recoveryMode(dataDirectory = process.cwd()): RecoveryMode {
  // standby.signal wins when both exist, as in PostgreSQL.
  if (existsSync(join(dataDirectory, 'standby.signal'))) return 'standby';
  if (existsSync(join(dataDirectory, 'recovery.signal'))) return 'targeted';
  return 'none';
}
