/**
 * dump-push: a logical dump set streamed straight into storage.
 *
 *   pg_dumpall --globals-only        -> globals.sql.zst, beside the databases
 *   per database, one at a time:
 *     psql exports a snapshot; pg_dump -Fc -Z 0 --snapshot (through stdbuf: 64 KiB writes)
 *       -> read into reused memory -> content SHA-256 -> compress -> stored SHA-256 -> storage.put
 *   then the sentinel, only once every object is durable and every program
 *   has exited successfully.
 *
 * No local file, and memory does not grow with the databases: one database's
 * stream is in flight at a time, and the globals' beside the first. Any
 * failure stops the set: its objects are removed and no sentinel is written,
 * so it never exists.
 */
import { hostname } from 'node:os';
import { encryptionFields } from '../archive/backups.ts';
import { type DumpedDatabase, type DumpedObject, type DumpSentinel, deleteDumpObjects, writeDumpSentinel } from '../archive/dumps.ts';
import type { ArchiveIdentity } from '../archive/identity.ts';
import { dumpDatabaseObject, dumpGlobalsObject, dumpNameAt, dumpObjectKey, dumpPrefix, dumpSentinelKey } from '../archive/layout.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { ConfigError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import {
  describeProgramFailure,
  type DumpClient,
  type DumpServer,
  exportSnapshot,
  inspectServerForDump,
  startGlobalsDump,
  startPgDump,
  withLargeStdioBuffersAndVersion,
} from '../postgres/dump.ts';
import type { RunningProgram } from '../postgres/programs.ts';
import { Progress, transferSummary } from '../progress/progress.ts';
import { DigestStage } from '../stages/checksum.ts';
import { coalesceStage } from '../stages/coalesce.ts';
import { codecFor } from '../stages/compress/codec.ts';
import { reclaimStage } from '../stages/reclaim.ts';
import type { WatchStage } from '../stages/pipeline.ts';
import { storedFormEncryption, storedFormStages, upload } from '../stages/transfer.ts';
import type { Storage } from '../storage/storage.ts';
import type { ReusedReads } from '../util/socket-output.ts';
import { VERSION } from '../version.ts';

export interface DumpPushSettings {
  storage: Storage;
  compression: CompressionSettings;
  client: DumpClient;
  /** The databases to dump, or every one that accepts connections (templates aside). */
  databases: string[] | 'all';
  /** The cluster the archive belongs to: a dump of any other is refused before any data moves. */
  identity: ArchiveIdentity;
  permanent: boolean;
  userData: unknown;
  /** Aborting stops the running program and fails the push (Ctrl-C, SIGTERM). */
  signal?: AbortSignal;
}

/** Compressed output is written in chunks of at least this size. */
const WRITE_CHUNK = 256 << 10;
/** The stored form is made in fresh buffers: their memory is reclaimed after this many bytes of it (stages/reclaim.ts). */
const RECLAIM_EVERY = 4 << 20;

/** Takes the dump set; resolves to its sentinel once it is durable in storage. */
export async function pushDumpSet(settings: DumpPushSettings): Promise<DumpSentinel> {
  const { storage, signal } = settings;
  const { client, dumpVersion } = await withLargeStdioBuffersAndVersion(settings.client);
  const server = await inspectServerForDump(client);
  const databases = chooseDatabases(server, settings.databases);
  await settings.identity.requireCluster({ systemIdentifier: server.systemIdentifier, segmentSize: server.walSegmentSize }, 'the server is');
  if (!server.superuser) {
    log.warning('the dumping role is not a superuser, so it cannot read role passwords: the globals hold the roles without them (pg_dumpall --no-role-passwords)');
  }
  signal?.throwIfAborted();

  const startTime = new Date();
  const name = dumpNameAt(startTime);
  if (await storage.head(dumpSentinelKey(name))) throw new WalshipError(`dump set ${name} already exists in ${storage.location}: another dump-push started in the same second; run it again`);
  for await (const object of storage.list(dumpPrefix(name))) {
    throw new WalshipError(`dump set ${name} is being written by another dump-push (${object.key} exists): run it again`);
  }
  const sizes = databases.map((database) => server.databases.find((known) => known.name === database)?.size);
  const codec = codecFor(settings.compression.method);
  const progress = new Progress({ label: `dump-push ${name}`, total: sizes.every((size) => size !== undefined) ? sizes.reduce((sum, size) => sum + size, 0) : undefined, estimated: true });
  // The globals are dumped beside the databases, so that pg_dumpall and the globals' upload do not hold back the first
  // pg_dump. The first of the two to fail stops the other (`failed`), and the set fails with its error.
  const failed = new AbortController();
  const streams: DumpPushSettings = { ...settings, signal: signal ? AbortSignal.any([signal, failed.signal]) : failed.signal };
  let firstFailure: unknown;
  const failFast = <T>(dumping: Promise<T>) =>
    dumping.catch((error: unknown) => {
      firstFailure ??= error;
      failed.abort();
      throw error;
    });
  try {
    const dumpingGlobals = failFast(
      dumpInto(streams, name, dumpGlobalsObject(codec), { what: 'the globals', program: 'pg_dumpall' }, progress, () => startGlobalsDump(client, server.superuser)),
    );
    const dumpingDatabases = failFast(
      (async () => {
        const dumped: DumpedDatabase[] = [];
        for (const database of databases) {
          streams.signal!.throwIfAborted();
          const snapshot = await exportSnapshot(client, database);
          try {
            const object = await dumpInto(streams, name, dumpDatabaseObject(database, codec), { what: `database "${database}"`, program: 'pg_dump' }, progress, () =>
              startPgDump(client, database, snapshot.id),
            );
            dumped.push({ ...object, Database: database, SnapshotTime: snapshot.time, PgVersion: server.versionNumber, PgDumpVersion: dumpVersion, SystemIdentifier: server.systemIdentifier });
          } finally {
            await snapshot.release();
          }
        }
        return dumped;
      })(),
    );
    // Both settle before anything is removed: a stream still writing could otherwise leave an object behind.
    const [globalsResult, databasesResult] = await Promise.allSettled([dumpingGlobals, dumpingDatabases]);
    if (globalsResult.status === 'rejected' || databasesResult.status === 'rejected') throw firstFailure;
    const globals = globalsResult.value;
    const dumped = databasesResult.value;
    const all = [globals, ...dumped];
    const sentinel: DumpSentinel = {
      DumpName: name,
      StartTime: startTime.toISOString(),
      FinishTime: new Date().toISOString(),
      Hostname: hostname(),
      PgVersion: server.versionNumber,
      PgDumpVersion: dumpVersion,
      SystemIdentifier: server.systemIdentifier,
      UncompressedSize: all.reduce((sum, object) => sum + object.UncompressedSize, 0),
      CompressedSize: all.reduce((sum, object) => sum + object.CompressedSize, 0),
      Compression: settings.compression.method,
      IsPermanent: settings.permanent,
      UserData: settings.userData,
      Globals: { ...globals, RolePasswords: server.superuser },
      Databases: dumped,
      ...encryptionFields(await storedFormEncryption(storage)),
      WalshipVersion: VERSION,
    };
    await writeDumpSentinel(storage, sentinel, { createOnly: true });
    progress.finish(`dump-push: ${name}: ${dumped.length} database${dumped.length === 1 ? '' : 's'} and the globals, ${transferSummary(sentinel.UncompressedSize, sentinel.CompressedSize, progress.elapsedMs)}`);
    return sentinel;
  } catch (error) {
    progress.finish();
    await removeIncomplete(storage, name);
    if (signal?.aborted) throw new WalshipError('dump-push was interrupted: no dump set was stored');
    throw error instanceof WalshipError ? new WalshipError(`${error.message}; no dump set was stored`, { cause: error }) : error;
  }
}

/** The databases to dump; one the server does not have is a ConfigError naming those it has. */
function chooseDatabases(server: DumpServer, requested: string[] | 'all'): string[] {
  const known = server.databases.map((database) => database.name);
  if (requested === 'all') {
    if (known.length === 0) throw new WalshipError('the server has no database that accepts connections: nothing to dump');
    return known;
  }
  const unknown = requested.filter((database) => !known.includes(database));
  if (unknown.length > 0) {
    throw new ConfigError(`--dbname ${unknown.join(', ')}: no such database on the server (or it refuses connections, or is a template); it has: ${known.join(', ') || 'none'}`);
  }
  return [...new Set(requested)];
}

/** Streams one program's output into `object` of dump set `name`; fails, naming `source.what`, unless the program exits 0. */
async function dumpInto(
  settings: DumpPushSettings,
  name: string,
  object: string,
  source: { what: string; program: string },
  progress: Progress,
  start: () => Promise<RunningProgram<ReusedReads>>,
): Promise<DumpedObject> {
  const program = await start();
  const stop = () => program.stop();
  settings.signal?.addEventListener('abort', stop, { once: true });
  if (settings.signal?.aborted) stop(); // while it started
  const counted: WatchStage = { name: 'progress', update: (piece) => progress.advance(piece.length), finish: () => undefined };
  const codec = codecFor(settings.compression.method);
  // The program's output is read into reused memory, and fed to the stages up to the compression in each read's own
  // call (stages/pipeline.ts): the fresh buffers are the stored form's.
  const stages = [
    counted,
    new DigestStage('sha256', 'content'),
    // No XXH64 in the zstd frames: the content SHA-256 checks the same bytes end to end (docs/DESIGN.md, "A dump's two SHA-256").
    ...storedFormStages(settings.storage, codec, settings.compression.level, { frameChecksum: false }),
    codec.method === 'none' ? undefined : coalesceStage(WRITE_CHUNK),
    reclaimStage(RECLAIM_EVERY),
    new DigestStage('sha256', 'stored'),
  ];
  try {
    const transfer = await upload(settings.storage, dumpObjectKey(name, object), program.output, stages, { createOnly: true }).catch(async (error: unknown) => {
      // The program's own failure (a lost connection, a permission) explains a short stream better than storage does.
      program.stop();
      const status = await program.exited;
      throw status.code !== 0 && !settings.signal?.aborted ? new WalshipError(`${source.what}: ${describeProgramFailure(source.program, status)}`, { cause: error }) : error;
    });
    const status = await program.exited;
    if (status.code !== 0) throw new WalshipError(`${source.what}: ${describeProgramFailure(source.program, status)}`);
    return {
      Object: object,
      UncompressedSize: transfer.result('content-size'),
      CompressedSize: transfer.result('stored-size'),
      SHA256: transfer.result('stored-sha256'),
      ContentSHA256: transfer.result('content-sha256'),
    };
  } finally {
    settings.signal?.removeEventListener('abort', stop);
    program.stop();
  }
}

async function removeIncomplete(storage: Storage, name: string): Promise<void> {
  try {
    await deleteDumpObjects(storage, name);
  } catch (cleanupError) {
    log.warning(`could not remove the incomplete dump set's objects; they have no sentinel, so they are never listed or restored`, {
      dump: name,
      reason: (cleanupError as Error).message,
    });
  }
}
