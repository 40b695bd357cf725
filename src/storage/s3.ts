/**
 * Amazon S3 and S3-compatible stores (WALG_S3_PREFIX=s3://bucket/path).
 * Credentials come from the SDK's standard chain (environment, AWS_PROFILE,
 * web identity, instance metadata) unless the keys are set in walship's
 * configuration. The SDK's own retries are off: RetryPolicy does them, the
 * same way for every backend.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { pipeline, Readable, Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NodeHttpHandler,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type ServerSideEncryption,
  type StorageClass,
} from './s3-sdk.ts';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { readBucketUrl } from './bucket-url.ts';
import { uploadInParts } from './parts.ts';
import { type Access, RequestRunner, type ServiceErrors } from './requests.ts';
import { isTransientNetworkError, isTransientStatus, readRetrySettings, RetryPolicy } from './retry.ts';
import { assertSafeKey, inBatches, type KnownBody, type ObjectInfo, type ObjectMetadata, type PutOptions, type Storage, type StorageCapabilities, type StoredObject } from './storage.ts';
import { crc32Hex } from '../util/crc32.ts';

/** S3 allows 10,000 parts: 8 MiB parts cover objects up to 78 GiB. */
const PART_SIZE = 8 << 20;
/**
 * Bytes of known size and checksum up to this go up in one streamed PUT,
 * larger ones in parts: one request per object is what a store keeps with
 * the least work (s3rver, for one, reads the parts back to join them), and a
 * retry sends the whole object again, which up to 128 MiB costs seconds
 * (rclone's own cutoff is 200 MiB; S3 takes 5 GiB).
 */
const STREAMED_PUT_LIMIT = 128 << 20;
const PART_CONCURRENCY = 4;
/**
 * A body held in memory goes out over HTTPS in pieces of this size: TLS
 * encrypts each write whole, so a whole 8 MiB part written at once is held
 * a second time, encrypted, outside V8.
 */
const HELD_BODY_PIECE = 256 << 10;
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH_KEYS = 1000;
const DELETE_REQUESTS_AT_ONCE = 4;

const STORAGE_CLASSES = ['STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR', 'OUTPOSTS', 'SNOW', 'EXPRESS_ONEZONE'];
const SSE_MODES = ['AES256', 'aws:kms', 'aws:kms:dsse'];

interface S3Settings {
  bucket: string;
  prefix: string;
  /** Over HTTPS, TLS protects request bodies: a streamed PUT goes unsigned, S3 checking the checksum it carries. */
  https: boolean;
  storageClass: StorageClass | undefined;
  serverSideEncryption: ServerSideEncryption | undefined;
  kmsKeyId: string | undefined;
}

/** Reads and validates every S3 setting, so a mistake fails before any request. */
function readS3Client(config: Config): { client: S3Client; settings: S3Settings; retry: RetryPolicy } {
  const { bucket, prefix } = readBucketUrl(config, 'WALG_S3_PREFIX', 's3');
  const endpoint = config.get('AWS_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(endpoint)) throw config.invalid('AWS_ENDPOINT', 'a URL such as https://s3.example.com');
  const region = config.get('AWS_REGION') ?? config.get('AWS_DEFAULT_REGION') ?? (endpoint ? 'us-east-1' : undefined);
  if (region === undefined) throw new ConfigError('AWS_REGION is not set: set it to the bucket\'s region (e.g. eu-west-1)');

  const storageClass = config.get('WALG_S3_STORAGE_CLASS');
  if (storageClass !== undefined && !STORAGE_CLASSES.includes(storageClass)) throw config.invalid('WALG_S3_STORAGE_CLASS', `one of ${STORAGE_CLASSES.join(', ')}`);
  const sse = config.get('WALG_S3_SSE');
  if (sse !== undefined && !SSE_MODES.includes(sse)) throw config.invalid('WALG_S3_SSE', `one of ${SSE_MODES.join(', ')}`);
  const kmsKeyId = config.get('WALG_S3_SSE_KMS_ID');
  if (kmsKeyId !== undefined && !sse?.startsWith('aws:kms')) throw new ConfigError('WALG_S3_SSE_KMS_ID is set but WALG_S3_SSE is not aws:kms (or aws:kms:dsse)');

  const accessKeyId = config.get('AWS_ACCESS_KEY_ID');
  const secretAccessKey = config.get('AWS_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, to use AWS_PROFILE, web identity or instance credentials)');
  }
  const retrySettings = readRetrySettings(config);
  const client = new S3Client({
    region,
    endpoint,
    forcePathStyle: config.boolean('AWS_S3_FORCE_PATH_STYLE', false),
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, sessionToken: config.get('AWS_SESSION_TOKEN') } : undefined,
    maxAttempts: 1,
    // The SDK's warnings would go to the console (a failed streamed PUT: "an error was encountered in a non-retryable streaming request"); walship reports failures itself.
    logger: { debug: () => undefined, info: () => undefined, warn: sdkWarning, error: () => undefined },
    requestHandler: new NodeHttpHandler({
      connectionTimeout: retrySettings.requestTimeoutMs,
      // An idle timeout on the socket: covers a stalled response body too.
      requestTimeout: retrySettings.requestTimeoutMs,
      httpAgent: new HttpAgent({ keepAlive: true }),
      httpsAgent: new HttpsAgent({ keepAlive: true, ca: readCaCertificate(config) }),
    }),
  });
  const https = endpoint === undefined || endpoint.startsWith('https://');
  return {
    client,
    settings: { bucket, prefix, https, storageClass: storageClass as StorageClass | undefined, serverSideEncryption: sse as ServerSideEncryption | undefined, kmsKeyId },
    retry: new RetryPolicy(retrySettings),
  };
}

function sdkWarning(...content: unknown[]): void {
  log.debug(`AWS SDK: ${content.map(String).join(' ')}`);
}

function readCaCertificate(config: Config): string | undefined {
  const path = config.absolutePath('WALG_S3_CA_CERT_FILE');
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${config.origin('WALG_S3_CA_CERT_FILE')}=${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

const TRANSIENT_S3_CODES = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'RequestTimeout', 'InternalError', 'ServiceUnavailable',
  'ConditionalRequestConflict', 'OperationAborted',
]);

function statusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

/** A HEAD response has no body, so its errors carry no code: the SDK names them "Unknown". */
const NO_ERROR_CODE = 'Unknown';

const S3_PERMISSIONS: Record<Access, string> = {
  read: 's3:GetObject (and kms:Decrypt on the key of an SSE-KMS object)',
  write: 's3:PutObject (and kms:GenerateDataKey and kms:Decrypt with SSE-KMS)',
  list: 's3:ListBucket on the bucket, for this prefix',
  delete: 's3:DeleteObject',
};

/** AWS names the action it refused in most AccessDenied messages ("... is not authorized to perform: kms:Decrypt on ..."). */
function refusedAction(error: unknown): string | undefined {
  return /not authorized to perform: ([a-z0-9-]+:[A-Za-z0-9]+)/.exec((error as Error).message)?.[1];
}

export const s3Errors: ServiceErrors = {
  // A HEAD has no body, so its 404 is named "NotFound"; a missing bucket is NoSuchBucket on every other request.
  isNotFound: (error) => statusOf(error) === 404 && ['NoSuchKey', 'NotFound'].includes((error as Error).name),
  isPreconditionFailed: (error) => statusOf(error) === 412,
  isTransient: (error) =>
    isTransientStatus(statusOf(error)) ||
    (error instanceof S3ServiceException && TRANSIENT_S3_CODES.has(error.name)) ||
    (!(error instanceof S3ServiceException) && isTransientNetworkError(error)),
  // Bad or expired credentials have codes of their own (InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, ...).
  isAccessDenied: (error) => statusOf(error) === 403 && ['AccessDenied', NO_ERROR_CODE].includes((error as Error).name),
  permissionFor: (access, error) => refusedAction(error) ?? S3_PERMISSIONS[access],
  describe: (error) => {
    const status = statusOf(error);
    const name = (error as Error).name;
    const message = (error as Error).message;
    if (status === undefined) return `${name}: ${message}`;
    if (name === NO_ERROR_CODE) return `HTTP ${status}`;
    return `${name} (HTTP ${status})${message && message !== name && message !== 'UnknownError' ? `: ${message}` : ''}`;
  },
};

export class S3Storage implements Storage {
  readonly location: string;
  readonly capabilities: StorageCapabilities = { localFileSystem: false, conditionalCreate: 'best-effort', listingIncludesMetadata: false, batchDelete: 'batched' };
  private readonly client: S3Client;
  private readonly settings: S3Settings;
  private readonly requests: RequestRunner;

  private constructor(client: S3Client, settings: S3Settings, retry: RetryPolicy) {
    this.client = client;
    this.settings = settings;
    this.location = `s3://${settings.bucket}/${settings.prefix}`;
    this.requests = new RequestRunner(retry, s3Errors, this.location, (key, signal) => this.isListed(key, signal));
  }

  static open(config: Config): S3Storage {
    const { client, settings, retry } = readS3Client(config);
    return new S3Storage(client, settings, retry);
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return this.settings.prefix + key;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<void> {
    const target = { Bucket: this.settings.bucket, Key: this.objectKey(key) };
    // S3 checks If-None-Match at PUT and at multipart completion; stores that ignore it are covered by wal-push's compare.
    const ifNoneMatch = options.createOnly ? '*' : undefined;
    // Every PUT and part carries a CRC32 (ChecksumAlgorithm), which S3 checks on arrival.
    if (options.known && options.known.size <= STREAMED_PUT_LIMIT && this.settings.https) return this.putStreamed(key, body, options.known, options);
    const send = <T>(operation: string, command: (signal: AbortSignal) => Promise<T>) => this.requests.run(operation, key, command);
    let uploadId: string | undefined;
    // Each part's ETag and CRC32: completing an upload created with a checksum algorithm must list both.
    const parts: CompletedPart[] = [];
    await uploadInParts(body, {
      putWhole: async (pieces) => {
        const size = pieces.reduce((total, piece) => total + piece.length, 0);
        if (this.settings.https && size > HELD_BODY_PIECE) {
          const held = heldBody(pieces, size);
          return this.putStreamed(key, await held.reopen(), held, options);
        }
        // The SDK computes the CRC32 of a body it is given whole.
        const data = Buffer.concat(pieces, size);
        const settings = this.objectSettings(options.metadata);
        await send('put', (abortSignal) =>
          this.client.send(
            new PutObjectCommand({ ...target, ...settings, Body: data, ContentLength: data.length, ChecksumAlgorithm: 'CRC32', IfNoneMatch: ifNoneMatch }),
            { abortSignal },
          ),
        );
      },
      begin: async () => {
        const settings = this.objectSettings(options.metadata);
        const created = await send('start upload of', (abortSignal) =>
          this.client.send(new CreateMultipartUploadCommand({ ...target, ...settings, ChecksumAlgorithm: 'CRC32' }), { abortSignal }),
        );
        uploadId = created.UploadId;
      },
      putPart: async (partNumber, data) => {
        const uploaded = await send(`upload part ${partNumber} of`, (abortSignal) =>
          this.client.send(
            new UploadPartCommand({ ...target, UploadId: uploadId, PartNumber: partNumber, Body: data, ContentLength: data.length, ChecksumAlgorithm: 'CRC32' }),
            { abortSignal },
          ),
        );
        parts[partNumber - 1] = { PartNumber: partNumber, ETag: uploaded.ETag, ChecksumCRC32: uploaded.ChecksumCRC32 };
      },
      complete: (partCount) =>
        send('complete upload of', (abortSignal) =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              ...target,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts.slice(0, partCount) },
              IfNoneMatch: ifNoneMatch,
            }),
            { abortSignal },
          ),
        ).then(() => undefined),
      abort: async () => {
        if (uploadId === undefined) return;
        await this.client.send(new AbortMultipartUploadCommand({ ...target, UploadId: uploadId })).catch((error: unknown) => {
          // The upload has failed already, and that is the error to report; the parts wait for the bucket's lifecycle rules.
          log.warning(`could not abort the multipart upload of ${key} in ${this.location}: ${s3Errors.describe(error)}`);
        });
      },
    }, { partSize: PART_SIZE, concurrency: PART_CONCURRENCY });
  }

  /**
   * One PUT streamed from `body`, whose size and checksum are known: S3 checks
   * the checksum on arrival, and the payload goes unsigned over HTTPS, so the
   * object is neither held in memory nor hashed here. The last piece goes
   * out only once the body has ended cleanly: a body that fails its checks
   * at its end leaves the request short of its Content-Length, which S3
   * never stores. A retry opens the bytes again.
   */
  private async putStreamed(key: string, body: Readable, known: KnownBody, options: PutOptions): Promise<void> {
    const target = { Bucket: this.settings.bucket, Key: this.objectKey(key) };
    const command = (Body: Readable) =>
      new PutObjectCommand({
        ...target,
        ...this.objectSettings(options.metadata),
        Body,
        ContentLength: known.size,
        [known.checksum.algorithm === 'crc32' ? 'ChecksumCRC32' : 'ChecksumSHA256']: Buffer.from(known.checksum.hex, 'hex').toString('base64'),
        IfNoneMatch: options.createOnly ? '*' : undefined,
      });
    let unsent: Readable | undefined = body;
    await this.requests.run('put', key, async (abortSignal, progress) => {
      const source = unsent ?? (await known.reopen());
      unsent = undefined;
      // The HTTP client pipes the body, which passes on no error: a failed body aborts the request.
      const failed = new AbortController();
      const sent = pipeline(source, holdingBackLastPiece(progress), (error) => error && failed.abort(error));
      try {
        await this.client.send(command(sent), { abortSignal: AbortSignal.any([abortSignal, failed.signal]) });
      } catch (error) {
        sent.destroy();
        throw failed.signal.aborted ? failed.signal.reason : error;
      }
    });
  }

  private objectSettings(metadata: ObjectMetadata | undefined) {
    return {
      Metadata: metadata,
      StorageClass: this.settings.storageClass,
      ServerSideEncryption: this.settings.serverSideEncryption,
      SSEKMSKeyId: this.settings.kmsKeyId,
    };
  }

  async get(key: string): Promise<StoredObject> {
    const target = { Bucket: this.settings.bucket, Key: this.objectKey(key) };
    const response = await this.requests.runRead('get', key, (abortSignal) => this.client.send(new GetObjectCommand(target), { abortSignal }));
    // A broken body resumes from the byte reached, of the same object version (If-Match).
    const resume = async (offset: number, abortSignal: AbortSignal) => {
      const rest = await this.client.send(new GetObjectCommand({ ...target, Range: `bytes=${offset}-`, IfMatch: response.ETag }), { abortSignal });
      return rest.Body as Readable;
    };
    return {
      info: { key, size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) },
      metadata: response.Metadata ?? {},
      body: this.requests.guardBody(key, response.Body as Readable, resume),
    };
  }

  async head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined> {
    const response = await this.requests.runUnlessMissing('head', key, (abortSignal) =>
      this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.objectKey(key) }), { abortSignal }),
    );
    if (!response) return undefined;
    return { key, size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0), metadata: response.Metadata ?? {} };
  }

  /** One key sorts before every longer key it prefixes, so a page of one answers. */
  private async isListed(key: string, abortSignal: AbortSignal): Promise<boolean> {
    const objectKey = this.objectKey(key);
    const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: objectKey, MaxKeys: 1 }), { abortSignal });
    return page.Contents?.[0]?.Key === objectKey;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let continuationToken: string | undefined;
    do {
      const page = await this.requests.run('list', prefix || '(all keys)', (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.settings.prefix + prefix, ContinuationToken: continuationToken }),
          { abortSignal },
        ),
      );
      for (const object of page.Contents ?? []) {
        yield { key: object.Key!.slice(this.settings.prefix.length), size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) };
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async delete(key: string): Promise<void> {
    await this.requests.run('delete', key, (abortSignal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.objectKey(key) }), { abortSignal }),
    );
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await forEachConcurrently(inBatches(keys, DELETE_BATCH_KEYS), DELETE_REQUESTS_AT_ONCE, (batch) => this.deleteBatch(batch));
  }

  /**
   * One DeleteObjects request. Its answer lists the keys it could not delete,
   * each with an error code: transient ones are sent again within the retry
   * budget, any other fails the batch naming the key.
   */
  private async deleteBatch(keys: readonly string[]): Promise<void> {
    let remaining = keys.map((key) => this.objectKey(key));
    const label = keys.length === 1 ? keys[0]! : `${keys[0]} and ${keys.length - 1} more keys`;
    await this.requests.run('delete', label, async (abortSignal) => {
      const answer = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.settings.bucket, Delete: { Objects: remaining.map((Key) => ({ Key })), Quiet: true } }),
        { abortSignal },
      );
      const failed = (answer.Errors ?? []).filter((error) => error.Code !== 'NoSuchKey');
      if (failed.length === 0) return;
      remaining = failed.map((error) => error.Key!);
      const [first] = failed;
      throw new S3ServiceException({
        name: first!.Code ?? 'InternalError',
        message: `${first!.Key!.slice(this.settings.prefix.length)}: ${first!.Message ?? first!.Code}${failed.length > 1 ? ` (and ${failed.length - 1} more keys)` : ''}`,
        $fault: 'server',
        // The answer gives each key a code, not a status; a refusal is what a 403 would be.
        $metadata: { httpStatusCode: first!.Code === 'AccessDenied' ? 403 : undefined },
      });
    });
  }
}

/** Pieces held in memory as a stream of views of them, HELD_BODY_PIECE bytes at most each. */
function viewsOf(pieces: Buffer[]): Readable {
  const views = function* () {
    for (const piece of pieces) for (let at = 0; at < piece.length; at += HELD_BODY_PIECE) yield piece.subarray(at, at + HELD_BODY_PIECE);
  };
  return Readable.from(views(), { objectMode: false });
}

/** Pieces held in memory, described for a streamed PUT. */
function heldBody(pieces: Buffer[], size: number): KnownBody {
  return {
    size,
    checksum: { algorithm: 'crc32', hex: crc32Hex(pieces.reduce((crc, piece) => crc32(piece, crc), 0)) },
    reopen: async () => viewsOf(pieces),
  };
}

/** Passes pieces on one behind, the last one only once its source has ended cleanly; `progress` at each piece. */
function holdingBackLastPiece(progress: () => void): Transform {
  let held: Buffer | undefined;
  return new Transform({
    transform(piece: Buffer, _encoding, callback) {
      progress();
      const previous = held;
      held = piece;
      callback(null, previous);
    },
    flush(callback) {
      callback(null, held);
    },
  });
}
