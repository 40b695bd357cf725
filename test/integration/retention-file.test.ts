// Retention end to end on file storage: a real PostgreSQL 15, delete retain 2,
// then point-in-time and LATEST restores (test/support/retention.ts).
import { rmSync } from 'node:fs';
import { makePostgresOwnedDirectory } from '../support/postgres.ts';
import { retentionScenario } from '../support/retention.ts';

retentionScenario({
  name: 'file storage',
  start: async () => {
    const directory = makePostgresOwnedDirectory('walship-retention-');
    return { settings: { WALG_FILE_PREFIX: directory }, stop: () => rmSync(directory, { recursive: true, force: true }) };
  },
});
