/**
 * Local stand-ins for the cloud object stores, for tests and benchmarks:
 * s3rver (S3), azurite (Azure Blob) and the Firebase Cloud Storage emulator
 * (the GCS JSON API). Each runs as its own child process on 127.0.0.1 with a
 * free port and a private temp directory, and is stopped by its PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from './paths.ts';
import { freePort } from './processes.ts';

export const EMULATOR_BUCKET = 'walship-test';

/** azurite's fixed development account; its key is public, documented by Microsoft. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Emulator {
  readonly kind: 's3' | 'azure' | 'gcs';
  /** Base URL of the service, e.g. http://127.0.0.1:PORT. */
  readonly endpoint: string;
  readonly port: number;
  /** Settings (WAL-G names) that point walship at `path` in this emulator's bucket, reached at `via` (a proxy) if given. */
  settings(path: string, via?: string): Record<string, string>;
  /** Where the emulator keeps objects as files, one per object named after its key (s3rver only). */
  readonly objectsDirectory?: string;
  /** The CPU time (user plus system) the emulator's process has used so far, in seconds: what a benchmark's time owes to it. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

const nodeBinary = process.execPath;
/** The kernel's unit of process CPU times in /proc (USER_HZ): 100 on Linux whatever the kernel's own tick rate. */
const CLOCK_TICKS_PER_SECOND = 100;
const packageFile = (relative: string) => join(projectRoot, 'node_modules', relative);

class EmulatorProcess {
  private readonly child: ChildProcess;
  private readonly workDir: string;
  private output = '';

  constructor(command: string, args: string[], workDir: string, env: NodeJS.ProcessEnv = process.env) {
    this.workDir = workDir;
    this.child = spawn(command, args, { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-4000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
  }

  /** Resolves once the port accepts connections; fails if the process exits first. */
  async waitListening(port: number, name: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await accepts(port))) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${name} exited before listening: ${this.output}`);
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`${name} did not listen on port ${port} in time: ${this.output}`);
      }
      await sleep(50);
    }
  }

  /** User plus system CPU seconds of the process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks). */
  cpuSeconds(): number {
    const fields = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      process.kill(this.child.pid, 'SIGKILL');
      await exited;
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * s3rver with one bucket. It needs the legacy OpenSSL provider for
 * ListObjectsV2 paging. `fast` runs it through s3rver-fast.ts, whose
 * deletes and listings do not scan whole folders (benchmarks).
 */
export async function startS3rver(options: { fast?: boolean } = {}): Promise<Emulator> {
  const workDir = mkdtempSync(join(tmpdir(), 'walship-s3rver-'));
  const port = await freePort();
  const server = new EmulatorProcess(
    nodeBinary,
    options.fast
      ? ['--openssl-legacy-provider', join(projectRoot, 'test/support/s3rver-fast.ts'), String(port), join(workDir, 'data'), EMULATOR_BUCKET]
      : ['--openssl-legacy-provider', packageFile('s3rver/bin/s3rver.js'), '--address', '127.0.0.1', '--port', String(port),
        '--directory', join(workDir, 'data'), '--configure-bucket', EMULATOR_BUCKET, '--silent'],
    workDir,
  );
  await server.waitListening(port, 's3rver');
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    kind: 's3',
    endpoint,
    port,
    objectsDirectory: join(workDir, 'data', EMULATOR_BUCKET),
    settings: (path, via = endpoint) => ({
      WALG_S3_PREFIX: `s3://${EMULATOR_BUCKET}/${path}`,
      AWS_ENDPOINT: via,
      AWS_S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    }),
    cpuSeconds: () => server.cpuSeconds(),
    stop: () => server.stop(),
  };
}

/** azurite's blob service, in memory. Tests create the container through the SDK. */
export async function startAzurite(): Promise<Emulator> {
  const workDir = mkdtempSync(join(tmpdir(), 'walship-azurite-'));
  const port = await freePort();
  const server = new EmulatorProcess(
    nodeBinary,
    [packageFile('azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', String(port),
      '--inMemoryPersistence', '--skipApiVersionCheck', '--disableTelemetry', '--silent'],
    workDir,
  );
  await server.waitListening(port, 'azurite');
  const endpoint = `http://127.0.0.1:${port}`;
  await createAzuriteContainer(`${endpoint}/${AZURITE_ACCOUNT}`);
  return {
    kind: 'azure',
    endpoint,
    port,
    settings: (path, via = endpoint) => ({
      WALG_AZ_PREFIX: `azure://${EMULATOR_BUCKET}/${path}`,
      WALG_AZ_ENDPOINT: `${via}/${AZURITE_ACCOUNT}`,
      AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
      AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY,
    }),
    cpuSeconds: () => server.cpuSeconds(),
    stop: () => server.stop(),
  };
}

async function createAzuriteContainer(accountUrl: string): Promise<void> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  const client = new BlobServiceClient(accountUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  await client.getContainerClient(EMULATOR_BUCKET).createIfNotExists();
}

/** The Firebase Cloud Storage emulator (GCS JSON API), started by test/support/gcs-emulator.ts. */
export async function startGcsEmulator(): Promise<Emulator> {
  const workDir = mkdtempSync(join(tmpdir(), 'walship-gcs-'));
  const port = await freePort();
  // The emulator keeps its blobs under os.tmpdir(): give it a private one.
  const server = new EmulatorProcess(nodeBinary, [join(projectRoot, 'test/support/gcs-emulator.ts'), String(port)], workDir, {
    ...process.env,
    TMPDIR: workDir,
  });
  await server.waitListening(port, 'GCS emulator');
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    kind: 'gcs',
    endpoint,
    port,
    settings: (path, via = endpoint) => ({
      WALG_GS_PREFIX: `gs://${EMULATOR_BUCKET}/${path}`,
      WALG_GS_ENDPOINT: via,
    }),
    cpuSeconds: () => server.cpuSeconds(),
    stop: () => server.stop(),
  };
}

export const startEmulator: Record<Emulator['kind'], () => Promise<Emulator>> = {
  s3: () => startS3rver(),
  azure: startAzurite,
  gcs: startGcsEmulator,
};
