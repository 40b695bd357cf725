/**
 * Google Cloud Storage (WALG_GS_PREFIX=gs://bucket/path). Credentials come
 * from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or the
 * metadata server). WALG_GS_ENDPOINT points at an emulator or a private
 * endpoint; with it, requests are authenticated only when
 * GOOGLE_APPLICATION_CREDENTIALS is set. The library's own retries are off:
 * RetryPolicy does them, the same way for every backend.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import { accessSync, constants } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError, type Bucket, type File, type FileMetadata, Storage as GcsClient } from '@google-cloud/storage';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { readBucketUrl } from './bucket-url.ts';
import { readParts } from './parts.ts';
import { type Access, RequestRunner, type ServiceErrors } from './requests.ts';
import { isTransientNetworkError, isTransientStatus, readRetrySettings, RetryPolicy } from './retry.ts';
import { assertSafeKey, type ObjectInfo, type ObjectMetadata, type PutOptions, type Storage, type StorageCapabilities, type StoredObject } from './storage.ts';

/**
 * Objects up to this size go up in one request, held in memory so that it can
 * be retried; larger ones stream through a resumable upload, this much at a time.
 */
const SINGLE_REQUEST_LIMIT = 32 << 20;
const LIST_PAGE_SIZE = 1000;
/** The library has no batch request: deletes go one request per object, this many at once. */
const DELETE_REQUESTS_AT_ONCE = 16;

function statusOf(error: unknown): number | undefined {
  const code = (error as ApiError | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The reason in a JSON error body; "forbidden" is a permission refused. */
function reasonOf(error: unknown): string | undefined {
  return (error as ApiError | undefined)?.errors?.[0]?.reason;
}

const GCS_PERMISSIONS: Record<Access, string> = {
  read: 'storage.objects.get',
  write: 'storage.objects.create (and storage.objects.delete, to replace an object)',
  list: 'storage.objects.list',
  delete: 'storage.objects.delete',
};

export const gcsErrors: ServiceErrors = {
  // A missing bucket is a 404 too ("The specified bucket does not exist"): a configuration error.
  isNotFound: (error) => statusOf(error) === 404 && !/bucket does not exist/i.test((error as Error).message),
  isPreconditionFailed: (error) => statusOf(error) === 412,
  isTransient: (error) => {
    const status = statusOf(error);
    return status === undefined ? isTransientNetworkError(error) : isTransientStatus(status);
  },
  // Bad credentials are 401; other 403s have reasons of their own (retentionPolicyNotMet, accountDisabled, ...).
  isAccessDenied: (error) => statusOf(error) === 403 && [undefined, 'forbidden'].includes(reasonOf(error)),
  // GCS names the permission it refused: "... does not have storage.objects.get access to ...".
  permissionFor: (access, error) => /does not have (storage\.[a-zA-Z]+\.[a-zA-Z]+) access/.exec((error as Error).message)?.[1] ?? GCS_PERMISSIONS[access],
  describe: (error) => {
    const status = statusOf(error);
    let message = ((error as Error).message ?? String(error)).split('\n')[0]!;
    // The library's summary of an error without a JSON body says nothing: the status is the news.
    if (message.startsWith('Multiple errors occurred')) message = '';
    if (status === undefined) return message;
    return message ? `HTTP ${status}: ${message}` : `HTTP ${status}`;
  },
};

/**
 * The library takes no abort signal, and the timeout it is given never
 * reaches its HTTP client, so a request that timed out would go on running
 * (and a stalled upload could still land later). Each request runs with a
 * signal in this context instead, and the HTTP requests it starts are
 * destroyed when the signal aborts.
 */
const requestSignal = new AsyncLocalStorage<AbortSignal>();
subscribe('http.client.request.created', (message) => {
  const signal = requestSignal.getStore();
  if (!signal) return;
  const { request } = message as { request: ClientRequest };
  const abort = () => request.destroy(signal.reason as Error);
  if (signal.aborted) return abort();
  signal.addEventListener('abort', abort, { once: true });
  request.once('close', () => signal.removeEventListener('abort', abort));
});

/** Runs one of the library's requests so that `signal` stops it. */
function stoppedBy<T>(signal: AbortSignal, request: () => Promise<T>): Promise<T> {
  return requestSignal.run(signal, request);
}

/** A download stream whose request stops when the stream is closed, however early. */
function stoppedWhenClosed(body: Readable): Readable {
  const closed = new AbortController();
  // The library starts the request on the body's first read (its 'reading' event): start it in this body's context.
  for (const start of body.listeners('reading') as (() => void)[]) {
    body.off('reading', start);
    body.on('reading', requestSignal.run(closed.signal, () => AsyncLocalStorage.bind(start)));
  }
  body.once('close', () => closed.abort(new Error('the download was closed')));
  return body;
}

function metadataOf(file: FileMetadata): ObjectMetadata {
  return Object.fromEntries(Object.entries(file.metadata ?? {}).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

export class GcsStorage implements Storage {
  readonly location: string;
  readonly capabilities: StorageCapabilities = { localFileSystem: false, conditionalCreate: 'enforced', listingIncludesMetadata: true, batchDelete: 'parallel' };
  private readonly bucket: Bucket;
  private readonly prefix: string;
  private readonly requests: RequestRunner;

  private constructor(bucket: Bucket, prefix: string, retry: RetryPolicy) {
    this.bucket = bucket;
    this.prefix = prefix;
    this.location = `gs://${bucket.name}/${prefix}`;
    this.requests = new RequestRunner(retry, gcsErrors, this.location, (key, signal) => this.isListed(key, signal));
  }

  static open(config: Config): GcsStorage {
    const { bucket, prefix } = readBucketUrl(config, 'WALG_GS_PREFIX', 'gs');
    const endpoint = config.get('WALG_GS_ENDPOINT');
    if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(endpoint)) throw config.invalid('WALG_GS_ENDPOINT', 'a URL such as https://storage.googleapis.com');
    const keyFilename = config.absolutePath('GOOGLE_APPLICATION_CREDENTIALS');
    if (keyFilename !== undefined) {
      try {
        accessSync(keyFilename, constants.R_OK);
      } catch (error) {
        throw new ConfigError(`${config.origin('GOOGLE_APPLICATION_CREDENTIALS')}=${keyFilename} cannot be read (${(error as NodeJS.ErrnoException).code})`);
      }
    }
    const retrySettings = readRetrySettings(config);
    const client = new GcsClient({
      apiEndpoint: endpoint,
      keyFilename,
      useAuthWithCustomEndpoint: endpoint !== undefined && keyFilename !== undefined,
      retryOptions: { autoRetry: false, maxRetries: 0 },
      timeout: retrySettings.requestTimeoutMs,
    });
    return new GcsStorage(client.bucket(bucket), prefix, new RetryPolicy(retrySettings));
  }

  private file(key: string, generation?: string | number): File {
    assertSafeKey(key);
    return this.bucket.file(this.prefix + key, generation === undefined ? undefined : { generation });
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<void> {
    const file = this.file(key);
    const parts = readParts(body, SINGLE_REQUEST_LIMIT)[Symbol.asyncIterator]();
    const first = await parts.next();
    const second = await parts.next();
    const writeOptions = {
      metadata: { metadata: options.metadata ?? {} },
      // ifGenerationMatch 0: create only if no live object has this name.
      preconditionOpts: options.createOnly ? { ifGenerationMatch: 0 } : undefined,
      validation: 'crc32c' as const,
    };
    if (second.done) {
      const data = first.done ? Buffer.alloc(0) : first.value;
      await this.requests.run('put', key, (signal) => stoppedBy(signal, () => file.save(data, { ...writeOptions, resumable: false })));
      return;
    }
    // Too large to hold: stream it. A failure fails the put (the caller retries the whole object).
    const rest = Readable.from((async function* () {
      yield first.value!;
      yield second.value;
      yield* { [Symbol.asyncIterator]: () => parts };
    })());
    try {
      await pipeline(rest, file.createWriteStream({ ...writeOptions, resumable: true }));
    } catch (error) {
      body.destroy();
      throw this.requests.translate('put', key, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    const [metadata] = await this.requests.runRead('get', key, (signal) => stoppedBy(signal, () => this.file(key).getMetadata()));
    // Read exactly the generation described, even if the name is replaced meanwhile.
    const version = this.file(key, metadata.generation);
    const resume = async (start: number) => stoppedWhenClosed(version.createReadStream({ decompress: false, start }));
    const body = this.requests.guardBody(key, stoppedWhenClosed(version.createReadStream({ decompress: false })), resume);
    return { info: this.infoOf(key, metadata), metadata: metadataOf(metadata), body };
  }

  async head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined> {
    const response = await this.requests.runUnlessMissing('head', key, (signal) => stoppedBy(signal, () => this.file(key).getMetadata()));
    if (!response) return undefined;
    const [metadata] = response;
    return { ...this.infoOf(key, metadata), metadata: metadataOf(metadata) };
  }

  private infoOf(key: string, metadata: FileMetadata): ObjectInfo {
    return { key, size: Number(metadata.size ?? 0), lastModified: new Date(metadata.updated ?? 0) };
  }

  /** One name sorts before every longer name it prefixes, so a page of one answers. */
  private async isListed(key: string, signal: AbortSignal): Promise<boolean> {
    const name = this.file(key).name;
    const [files] = await stoppedBy(signal, () => this.bucket.getFiles({ prefix: name, maxResults: 1, autoPaginate: false }));
    return files[0]?.name === name;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let pageToken: string | undefined;
    do {
      const [files, nextQuery] = await this.requests.run('list', prefix || '(all keys)', (signal) =>
        stoppedBy(signal, () => this.bucket.getFiles({ prefix: this.prefix + prefix, autoPaginate: false, maxResults: LIST_PAGE_SIZE, pageToken })),
      );
      for (const file of files) yield { ...this.infoOf(file.name.slice(this.prefix.length), file.metadata), metadata: metadataOf(file.metadata) };
      pageToken = (nextQuery as { pageToken?: string } | null)?.pageToken;
    } while (pageToken);
  }

  async delete(key: string): Promise<void> {
    await this.requests.run('delete', key, (signal) => stoppedBy(signal, () => this.file(key).delete({ ignoreNotFound: true })));
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await forEachConcurrently(keys, DELETE_REQUESTS_AT_ONCE, (key) => this.delete(key));
  }
}
