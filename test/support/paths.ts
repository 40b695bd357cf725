import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built single executable under test. */
export const walshipBinary = process.env.WALSHIP_BINARY ?? join(projectRoot, 'dist', 'walship');
export const postgresBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
