/**
 * backup-push: pg_basebackup's tar stream goes straight into storage.
 *
 *   pg_basebackup -D - -Ft -X fetch -> tar reader -> split at member boundaries
 *     -> per part: compress -> SHA-256 -> storage.put      (several parts in flight)
 *   then global/pg_control in a part of its own (pg_control.tar.<ext>, as
 *   WAL-G stores it and its backup-fetch requires), then metadata.json, then
 *   the sentinel, only once every part is durable and pg_basebackup has
 *   exited successfully.
 *
 * Nothing is staged on local disk and memory does not grow with the cluster:
 * each part in flight holds only its stream buffers and compressor state.
 */
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  type BackupPart,
  type BackupSentinel,
  backupNameForSegment,
  deleteBackupObjects,
  encryptionFields,
  writeBackupDocuments,
} from '../archive/backups.ts';
import type { ArchiveIdentity } from '../archive/identity.ts';
import { controlPartName, partKey, partName, sentinelKey } from '../archive/layout.ts';
import type { CompressionSettings } from '../config/settings.ts';
import { AlreadyExistsError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { type BackupLabel, parseBackupLabel } from '../postgres/backup-label.ts';
import { backupEndLsn } from '../postgres/backup-manifest.ts';
import {
  checkServerForBackup,
  describeBaseBackupFailure,
  inspectServer,
  type PostgresClient,
  startBaseBackup,
} from '../postgres/basebackup.ts';
import { type ControlFileFacts, parseControlFile } from '../postgres/control-file.ts';
import { formatLsn } from '../postgres/lsn.ts';
import type { ExitStatus } from '../postgres/programs.ts';
import { Progress, transferSummary } from '../progress/progress.ts';
import { DigestStage, SizeStage } from '../stages/checksum.ts';
import { coalesceStage } from '../stages/coalesce.ts';
import { codecFor, type WritableCodec } from '../stages/compress/codec.ts';
import { storedFormEncryption, storedFormMetadata, storedFormStages, upload } from '../stages/transfer.ts';
import type { ObjectMetadata, Storage } from '../storage/storage.ts';
import { InFlight } from '../util/concurrency.ts';
import { VERSION } from '../version.ts';
import { PartSplitter } from './parts.ts';
import { readTar, type TarEvent } from './tar.ts';

export interface BackupPushSettings {
  storage: Storage;
  compression: CompressionSettings;
  uploadConcurrency: number;
  /** A part closes at the first member boundary past this many bytes. */
  partSizeThreshold: number;
  client: PostgresClient;
  /** The data directory the caller named (WAL-G's `backup-push DIR`), checked against the server's. */
  dataDirectory?: string;
  /** The cluster the archive belongs to: a backup of any other is refused before any data moves. */
  identity: ArchiveIdentity;
  permanent: boolean;
  userData: unknown;
  /** Aborting stops pg_basebackup and fails the push (Ctrl-C, SIGTERM). */
  signal?: AbortSignal;
}

const BACKUP_LABEL = 'walship backup-push';
const CONTROL_FILE = 'global/pg_control';
/** Bytes buffered between the tar reader and each part's compressor. */
const PART_STREAM_BUFFER = 256 << 10;
/** Compressed output is written in chunks of at least this size. */
const WRITE_CHUNK = 256 << 10;
/** The manifest's WAL-Ranges sit in its last few hundred bytes; keep a generous tail. */
const MANIFEST_TAIL_BYTES = 64 << 10;
const SMALL_MEMBER_LIMIT = 1 << 20;

/** Watches the tar stream for the members that describe the backup. */
class BackupFacts {
  private member = '';
  private labelText: Buffer[] = [];
  private controlBytes: Buffer[] = [];
  private manifestTail = Buffer.alloc(0);
  private firstMember = true;
  label: BackupLabel | undefined;
  control: ControlFileFacts | undefined;
  sawManifest = false;

  observe(event: TarEvent): void {
    if (event.kind === 'entry') {
      this.finishMember();
      this.member = event.entry.path;
      if (this.firstMember && this.member !== 'backup_label') {
        throw new WalshipError(`pg_basebackup's archive starts with ${this.member}, not backup_label: is this a PostgreSQL base backup?`);
      }
      this.firstMember = false;
      if (this.member === 'backup_manifest') this.sawManifest = true;
    } else if (event.kind === 'data') {
      if (this.member === 'backup_label') this.keepSmall(this.labelText, event.raw);
      else if (this.member === 'global/pg_control') this.keepSmall(this.controlBytes, event.raw);
      else if (this.member === 'backup_manifest') {
        this.manifestTail = Buffer.concat([this.manifestTail, event.raw]).subarray(-MANIFEST_TAIL_BYTES);
      }
    } else if (event.kind === 'end') {
      this.finishMember();
    }
  }

  private keepSmall(chunks: Buffer[], data: Buffer): void {
    if (chunks.reduce((sum, chunk) => sum + chunk.length, 0) + data.length > SMALL_MEMBER_LIMIT) {
      throw new WalshipError(`${this.member} in pg_basebackup's archive is implausibly large`);
    }
    chunks.push(Buffer.from(data));
  }

  private finishMember(): void {
    if (this.member === 'backup_label' && !this.label) this.label = parseBackupLabel(Buffer.concat(this.labelText).toString('utf8'));
    if (this.member === 'global/pg_control' && !this.control) this.control = parseControlFile(Buffer.concat(this.controlBytes));
    this.member = '';
  }

  endOfBackup(): { timeline: number; endLsn: bigint } {
    if (!this.sawManifest) throw new WalshipError("pg_basebackup's archive has no backup_manifest: backup-push needs PostgreSQL 13 or later");
    return backupEndLsn(this.manifestTail.toString('utf8'));
  }
}

/** Takes the backup; resolves to its sentinel once the backup is durable in storage. */
export async function pushBackup(settings: BackupPushSettings): Promise<BackupSentinel> {
  const { storage, client, signal } = settings;
  const server = await inspectServer(client);
  checkServerForBackup(server, settings.dataDirectory);
  await settings.identity.requireCluster({ systemIdentifier: server.systemIdentifier, segmentSize: server.walSegmentSize }, `the server${server.dataDirectory ? ` with data directory ${server.dataDirectory}` : ''} is`);
  signal?.throwIfAborted();

  const startTime = new Date();
  const basebackup = startBaseBackup(client, BACKUP_LABEL);
  let stoppedByUs = false;
  const stop = () => {
    stoppedByUs = true;
    basebackup.stop();
  };
  signal?.addEventListener('abort', stop, { once: true });

  const progress = new Progress({ label: 'backup-push', total: server.estimatedSize, estimated: true });
  const facts = new BackupFacts();
  const splitter = new PartSplitter(
    readTar(basebackup.output),
    settings.partSizeThreshold,
    (event) => {
      facts.observe(event);
      progress.advance(event.raw.length);
    },
    { holdBack: CONTROL_FILE },
  );
  let name: string | undefined;
  let ownsObjects = false;
  try {
    await splitter.readAheadUntil(() => facts.label !== undefined);
    if (!facts.label) throw new WalshipError("pg_basebackup's archive has no backup_label");
    name = backupNameForSegment(facts.label.startSegment);
    if (await storage.head(sentinelKey(name))) {
      throw new WalshipError(`backup ${name} already exists in ${storage.location}: another backup started in the same WAL segment`);
    }
    ownsObjects = true;
    const parts = await uploadParts(settings, name, splitter);
    const status = await basebackup.exited;
    if (status.code !== 0) throw new WalshipError(describeBaseBackupFailure(status));
    const control = splitter.heldBackArchive();
    if (!facts.control || !control) throw new WalshipError(`pg_basebackup's archive has no ${CONTROL_FILE}`);
    parts.push(await uploadControlPart(settings, name, control));
    const finishTime = new Date();
    const end = facts.endOfBackup();

    const sentinel: BackupSentinel = {
      BackupName: name,
      LSN: formatLsn(facts.label.startLsn),
      FinishLSN: formatLsn(end.endLsn),
      Timeline: facts.label.timeline,
      StartTime: startTime.toISOString(),
      FinishTime: finishTime.toISOString(),
      Hostname: hostname(),
      DataDir: server.dataDirectory ?? settings.dataDirectory ?? '',
      PgVersion: server.versionNumber,
      SystemIdentifier: facts.control.systemIdentifier,
      WalSegmentSize: server.walSegmentSize,
      UncompressedSize: parts.reduce((sum, part) => sum + part.UncompressedSize, 0),
      CompressedSize: parts.reduce((sum, part) => sum + part.CompressedSize, 0),
      Compression: settings.compression.method,
      ...encryptionFields(await storedFormEncryption(storage)),
      Label: facts.label.label,
      IsPermanent: settings.permanent,
      UserData: settings.userData,
      Parts: parts,
      WalshipVersion: VERSION,
      Writer: 'walship',
    };
    await writeBackupDocuments(storage, sentinel, { createOnly: true });
    progress.finish(`backup-push: ${name}: ${transferSummary(sentinel.UncompressedSize, sentinel.CompressedSize, progress.elapsedMs)}`);
    return sentinel;
  } catch (error) {
    progress.finish();
    stop();
    const status = await basebackup.exited;
    if (name && ownsObjects && !(error instanceof AlreadyExistsError)) await removeIncomplete(storage, name);
    throw explainFailure(error, status, { stoppedByUs: stoppedByUs && status.signal === 'SIGTERM', aborted: signal?.aborted ?? false });
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** pg_basebackup's own failure explains a broken stream better than the stream does. */
function explainFailure(error: unknown, status: ExitStatus, how: { stoppedByUs: boolean; aborted: boolean }): unknown {
  if (how.aborted) return new WalshipError('backup-push was interrupted: no backup was stored');
  if (!how.stoppedByUs && status.code !== 0) {
    return new WalshipError(`${describeBaseBackupFailure(status)}; no backup was stored`, { cause: error });
  }
  return error;
}

async function removeIncomplete(storage: Storage, name: string): Promise<void> {
  try {
    await deleteBackupObjects(storage, name);
  } catch (cleanupError) {
    log.warning(`could not remove the incomplete backup's objects; they have no sentinel, so they are never listed or restored`, {
      backup: name,
      reason: (cleanupError as Error).message,
    });
  }
}

/** Uploads the archive part by part, with up to `uploadConcurrency` parts in flight. */
async function uploadParts(settings: BackupPushSettings, name: string, splitter: PartSplitter): Promise<BackupPart[]> {
  const codec = codecFor(settings.compression.method);
  const metadata = await storedFormMetadata(settings.storage);
  const parts: BackupPart[] = [];
  const inFlight = new InFlight(settings.uploadConcurrency);
  try {
    for (let index = 1; !splitter.finished; index++) {
      await inFlight.room();
      const part = startPartUpload(settings, name, partName(index, codec), codec, metadata, splitter.nextPart());
      inFlight.add(part.uploaded.then((described) => {
        parts[index - 1] = described;
      }));
      // The next part may start only once this one has read its last byte.
      await part.fed;
    }
    await inFlight.done();
    return parts;
  } catch (error) {
    // Nothing may still be writing when the caller removes the partial upload.
    await inFlight.settled();
    throw error;
  }
}

/** global/pg_control's own part, once every other part is durable. */
async function uploadControlPart(settings: BackupPushSettings, name: string, archive: Buffer): Promise<BackupPart> {
  const codec = codecFor(settings.compression.method);
  const content = (async function* () {
    yield archive;
  })();
  const part = startPartUpload(settings, name, controlPartName(codec), codec, await storedFormMetadata(settings.storage), content);
  const [described] = await Promise.all([part.uploaded, part.fed]);
  return described;
}

interface PartUpload {
  /** Settles once the part's content has been read: the splitter is free for the next part. */
  fed: Promise<void>;
  uploaded: Promise<BackupPart>;
}

/** Streams one part: count -> compress -> encrypt -> gather into large writes -> SHA-256 -> storage.put. */
function startPartUpload(settings: BackupPushSettings, name: string, part: string, codec: WritableCodec, metadata: ObjectMetadata, content: AsyncIterable<Buffer>): PartUpload {
  const source = Readable.from(content, { objectMode: false, highWaterMark: PART_STREAM_BUFFER });
  const stages = [
    new SizeStage('content'),
    ...storedFormStages(settings.storage, codec, settings.compression.level),
    codec.method === 'none' ? undefined : coalesceStage(WRITE_CHUNK),
    // The checksum covers the stored bytes: it catches storage corruption before
    // anything is decompressed, and costs a fraction of hashing the whole tar.
    new DigestStage('sha256', 'stored'),
  ];
  const uploaded = upload(settings.storage, partKey(name, part), source, stages, { metadata }).then(
    (transfer): BackupPart => ({
      Name: part,
      UncompressedSize: transfer.result('content-size'),
      CompressedSize: transfer.result('stored-size'),
      SHA256: transfer.result('stored-sha256'),
    }),
  );
  const fed = finished(source).catch(async (sourceError: unknown) => {
    // A failed upload destroys its source; its own error says more than "premature close".
    const uploadError = await uploaded.then(() => undefined, (error: unknown) => error);
    throw uploadError && (uploadError as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE' ? uploadError : sourceError;
  });
  uploaded.catch(() => undefined); // its failure reaches the caller through `fed` or the in-flight set
  return { fed, uploaded };
}
