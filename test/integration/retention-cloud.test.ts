// Retention end to end on the cloud emulators: a real PostgreSQL 15 archiving
// to S3 (s3rver) and to Azure Blob (azurite), delete retain 2, then
// point-in-time and LATEST restores (test/support/retention.ts).
import { startEmulator } from '../support/emulators.ts';
import { retentionScenario } from '../support/retention.ts';

for (const [name, kind] of [['S3 (s3rver)', 's3'], ['Azure Blob (azurite)', 'azure']] as const) {
  retentionScenario({
    name,
    start: async () => {
      const emulator = await startEmulator[kind]();
      return { settings: emulator.settings('retention'), stop: () => emulator.stop() };
    },
  });
}
