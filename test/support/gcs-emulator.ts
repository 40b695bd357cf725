/**
 * Runs the Firebase Cloud Storage emulator, which serves the GCS JSON API,
 * without the firebase CLI (that needs Java and a downloaded jar for the
 * rules engine). Rules are never consulted on the admin JSON API that
 * @google-cloud/storage uses, so the rules runtime is stubbed out.
 * Usage: node test/support/gcs-emulator.ts PORT (listens on 127.0.0.1).
 * Relies on firebase-tools internals: its version is pinned in package.json.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js');

const port = Number(process.argv[2]);
const emulator = new StorageEmulator({ projectId: 'walship-test', host: '127.0.0.1', port, rules: [], auto_download: false });
emulator._rulesRuntime.start = async () => undefined;
emulator._rulesManager.start = async () => undefined;
// The registry starts it and makes its address known to the URLs it builds.
await EmulatorRegistry.start(emulator);
