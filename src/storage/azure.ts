/**
 * Azure Blob Storage (WALG_AZ_PREFIX=azure://container/path), as block
 * blobs. Credentials: AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_ACCESS_KEY or
 * AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING. The SDK's own
 * retries are off: RetryPolicy does them, the same way for every backend.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AnonymousCredential,
  type BlobRequestConditions,
  BlobServiceClient,
  type BlockBlobClient,
  type ContainerClient,
  RestError,
  type StoragePipelineOptions,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { forEachConcurrently } from '../util/concurrency.ts';
import { readBucketUrl } from './bucket-url.ts';
import { uploadInParts } from './parts.ts';
import { type Access, RequestRunner, type ServiceErrors } from './requests.ts';
import { isTransientNetworkError, isTransientStatus, readRetrySettings, RetryPolicy } from './retry.ts';
import { assertSafeKey, inBatches, type ObjectInfo, type ObjectMetadata, type PutOptions, type Storage, type StorageCapabilities, type StoredObject } from './storage.ts';

/** A blob holds at most 50,000 blocks: 8 MiB blocks cover blobs up to 390 GiB. */
const BLOCK_SIZE = 8 << 20;
const BLOCK_CONCURRENCY = 4;
/** The same page size as S3 and GCS, so the contract suite pages through every backend alike. */
const LIST_PAGE_SIZE = 1000;
/** A blob batch holds at most 256 subrequests. */
const DELETE_BATCH_KEYS = 256;
const DELETE_REQUESTS_AT_ONCE = 4;

/** Builds the container client from the settings, validating them before any request. */
function readContainerClient(config: Config, container: string, pipeline: StoragePipelineOptions): { client: ContainerClient; account: string } {
  const connectionString = config.get('AZURE_STORAGE_CONNECTION_STRING');
  if (connectionString !== undefined) {
    let service: BlobServiceClient;
    try {
      service = BlobServiceClient.fromConnectionString(connectionString, pipeline);
    } catch {
      throw config.invalid('AZURE_STORAGE_CONNECTION_STRING', 'a storage account connection string (DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...)');
    }
    return { client: service.getContainerClient(container), account: service.accountName };
  }

  const account = config.get('AZURE_STORAGE_ACCOUNT');
  if (account === undefined) throw new ConfigError('AZURE_STORAGE_ACCOUNT is not set (or set AZURE_STORAGE_CONNECTION_STRING)');
  if (!/^[a-z0-9]{3,24}$/.test(account)) throw config.invalid('AZURE_STORAGE_ACCOUNT', '3 to 24 lowercase letters and digits');
  const endpoint = config.get('WALG_AZ_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(endpoint)) {
    throw config.invalid('WALG_AZ_ENDPOINT', 'the account\'s blob service URL, such as https://ACCOUNT.blob.core.windows.net');
  }
  const suffix = config.get('AZURE_ENDPOINT_SUFFIX') ?? 'core.windows.net';
  const accountUrl = (endpoint ?? `https://${account}.blob.${suffix}`).replace(/\/+$/, '');

  const key = config.get('AZURE_STORAGE_ACCESS_KEY');
  const sas = config.get('AZURE_STORAGE_SAS_TOKEN');
  if (key !== undefined && sas !== undefined) throw new ConfigError('AZURE_STORAGE_ACCESS_KEY and AZURE_STORAGE_SAS_TOKEN are both set: set one');
  if (key !== undefined) {
    let credential: StorageSharedKeyCredential;
    try {
      credential = new StorageSharedKeyCredential(account, key);
    } catch {
      throw config.invalid('AZURE_STORAGE_ACCESS_KEY', 'the account key (base64)');
    }
    return { client: new BlobServiceClient(accountUrl, credential, pipeline).getContainerClient(container), account };
  }
  if (sas !== undefined) {
    const url = `${accountUrl}?${sas.replace(/^\?/, '')}`;
    return { client: new BlobServiceClient(url, new AnonymousCredential(), pipeline).getContainerClient(container), account };
  }
  throw new ConfigError('no Azure credentials: set AZURE_STORAGE_ACCESS_KEY or AZURE_STORAGE_SAS_TOKEN (with AZURE_STORAGE_ACCOUNT), or AZURE_STORAGE_CONNECTION_STRING');
}

const TRANSIENT_AZURE_CODES = new Set(['ServerBusy', 'OperationTimedOut', 'InternalError', 'REQUEST_SEND_ERROR']);

function restError(error: unknown): RestError | undefined {
  return error instanceof RestError || (error as Error | undefined)?.name === 'RestError' ? (error as RestError) : undefined;
}

/** The service's error code; a HEAD response has no body, so there it is only in the x-ms-error-code header. */
function errorCode(error: RestError): string | undefined {
  return error.code ?? (error.details as { errorCode?: string } | undefined)?.errorCode;
}

const SAS_PERMISSION_LETTERS: Record<Access, string> = { read: 'r (read)', write: 'w (write)', list: 'l (list)', delete: 'd (delete)' };

/**
 * What a SAS token lacks, by the code Azure refuses it with. A token that
 * may read gets 404 for a missing blob whether or not it may list, so unlike
 * S3 and GCS no listing is needed to tell absent from forbidden.
 */
const SAS_REFUSALS: Record<string, (access: Access) => string> = {
  AuthorizationPermissionMismatch: (access) => `${SAS_PERMISSION_LETTERS[access]} in the SAS token's permissions (sp=)`,
  // An account SAS (srt=): listing is an operation on the container, the others on objects.
  AuthorizationResourceTypeMismatch: (access) => `${access === 'list' ? 'c (container)' : 'o (object)'} in the account SAS's resource types (srt=)`,
  AuthorizationServiceMismatch: () => "b (blob) in the account SAS's services (ss=)",
};

function sasRefusal(error: unknown): ((access: Access) => string) | undefined {
  const rest = restError(error);
  const code = rest?.statusCode === 403 ? errorCode(rest) : undefined;
  return code !== undefined && Object.hasOwn(SAS_REFUSALS, code) ? SAS_REFUSALS[code] : undefined;
}

export const azureErrors: ServiceErrors = {
  // ContainerNotFound is a 404 too, but a configuration error, not an absent object.
  isNotFound: (error) => {
    const rest = restError(error);
    return rest?.statusCode === 404 && errorCode(rest) === 'BlobNotFound';
  },
  isPreconditionFailed: (error) => {
    const rest = restError(error);
    return rest?.statusCode === 412 || (rest?.statusCode === 409 && errorCode(rest) === 'BlobAlreadyExists');
  },
  isTransient: (error) => {
    const rest = restError(error);
    // The SDK turns a connection reset in a response body into an AbortError.
    if (!rest) return isTransientNetworkError(error) || (error as Error | undefined)?.name === 'AbortError';
    return isTransientStatus(rest.statusCode) || TRANSIENT_AZURE_CODES.has(errorCode(rest) ?? '') || (rest.statusCode === undefined && isTransientNetworkError(error));
  },
  isAccessDenied: (error) => sasRefusal(error) !== undefined,
  permissionFor: (access, error) => sasRefusal(error)?.(access) ?? `the permission to ${access}`,
  describe: (error) => {
    const rest = restError(error);
    // Service messages carry RequestId/Time lines: the first line is the message.
    const message = ((error as Error).message ?? String(error)).split('\n')[0]!.trim();
    if (!rest) return message;
    const status = rest.statusCode === undefined ? '' : ` (HTTP ${rest.statusCode})`;
    return `${errorCode(rest) ?? 'error'}${status}${message ? `: ${message}` : ''}`;
  },
};

function md5(data: Buffer): Uint8Array {
  return createHash('md5').update(data).digest();
}

/** Block ids must have the same length within a blob. */
function blockId(partNumber: number): string {
  return Buffer.from(`walship-block-${String(partNumber).padStart(6, '0')}`).toString('base64');
}

/**
 * A download's body. The SDK's stream can report a broken connection twice
 * (the socket error, then an abort): the reader handles the first, and the
 * second must not crash the process as an unhandled 'error' event.
 */
function bodyOf(response: { readableStreamBody?: NodeJS.ReadableStream }): Readable {
  const body = response.readableStreamBody as Readable;
  body.on('error', () => undefined);
  return body;
}

export class AzureStorage implements Storage {
  readonly location: string;
  readonly capabilities: StorageCapabilities = { localFileSystem: false, conditionalCreate: 'enforced', listingIncludesMetadata: false, batchDelete: 'batched' };
  private readonly container: ContainerClient;
  private readonly prefix: string;
  private readonly requests: RequestRunner;

  private constructor(container: ContainerClient, prefix: string, location: string, retry: RetryPolicy) {
    this.container = container;
    this.prefix = prefix;
    this.location = location;
    this.requests = new RequestRunner(retry, azureErrors, location);
  }

  static open(config: Config): AzureStorage {
    const { bucket: container, prefix } = readBucketUrl(config, 'WALG_AZ_PREFIX', 'azure');
    const retrySettings = readRetrySettings(config);
    const pipeline: StoragePipelineOptions = {
      retryOptions: { maxTries: 1, tryTimeoutInMs: retrySettings.requestTimeoutMs },
      keepAliveOptions: { enable: true },
    };
    const { client, account } = readContainerClient(config, container, pipeline);
    return new AzureStorage(client, prefix, `azure://${container}/${prefix} (account ${account})`, new RetryPolicy(retrySettings));
  }

  private blob(key: string): BlockBlobClient {
    assertSafeKey(key);
    return this.container.getBlockBlobClient(this.prefix + key);
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<void> {
    const blob = this.blob(key);
    const conditions: BlobRequestConditions | undefined = options.createOnly ? { ifNoneMatch: '*' } : undefined;
    const send = <T>(operation: string, request: (abortSignal: AbortSignal) => Promise<T>) =>
      this.requests.run(operation, key, request).then(() => undefined);
    await uploadInParts(body, {
      putWhole: (pieces) => {
        const data = Buffer.concat(pieces);
        return send('put', (abortSignal) =>
          blob.upload(data, data.length, { metadata: options.metadata, conditions, transactionalContentMD5: md5(data), abortSignal }),
        );
      },
      // Staged blocks need no set-up, and uncommitted ones are discarded by the service.
      begin: async () => undefined,
      abort: async () => undefined,
      putPart: (partNumber, data) =>
        send(`upload block ${partNumber} of`, (abortSignal) =>
          blob.stageBlock(blockId(partNumber), data, data.length, { transactionalContentMD5: md5(data), abortSignal }),
        ),
      complete: async (partCount) => {
        const blocks = Array.from({ length: partCount }, (_, index) => blockId(index + 1));
        await send('commit', (abortSignal) => blob.commitBlockList(blocks, { metadata: options.metadata, conditions, abortSignal }));
      },
    }, { partSize: BLOCK_SIZE, concurrency: BLOCK_CONCURRENCY });
  }

  async get(key: string): Promise<StoredObject> {
    const blob = this.blob(key);
    // The SDK's own resume gives up on a connection reset: resume here, of the same version (If-Match).
    const download = (offset: number, abortSignal: AbortSignal, ifMatch?: string) =>
      blob.download(offset, undefined, { abortSignal, maxRetryRequests: 0, conditions: ifMatch ? { ifMatch } : undefined });
    const response = await this.requests.run('get', key, (abortSignal) => download(0, abortSignal));
    const resume = async (offset: number, abortSignal: AbortSignal) => bodyOf(await download(offset, abortSignal, response.etag));
    return {
      info: { key, size: response.contentLength ?? 0, lastModified: response.lastModified ?? new Date(0) },
      metadata: response.metadata ?? {},
      body: this.requests.guardBody(key, bodyOf(response), resume),
    };
  }

  async head(key: string): Promise<(ObjectInfo & { metadata: ObjectMetadata }) | undefined> {
    const properties = await this.requests.runUnlessMissing('head', key, (abortSignal) => this.blob(key).getProperties({ abortSignal }));
    if (!properties) return undefined;
    return { key, size: properties.contentLength ?? 0, lastModified: properties.lastModified ?? new Date(0), metadata: properties.metadata ?? {} };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let continuationToken: string | undefined;
    do {
      const page = await this.requests.run('list', prefix || '(all keys)', async (abortSignal) => {
        const pages = this.container.listBlobsFlat({ prefix: this.prefix + prefix, abortSignal }).byPage({ continuationToken, maxPageSize: LIST_PAGE_SIZE });
        return (await pages.next()).value;
      });
      for (const item of page?.segment.blobItems ?? []) {
        yield { key: item.name.slice(this.prefix.length), size: item.properties.contentLength ?? 0, lastModified: item.properties.lastModified };
      }
      continuationToken = page?.continuationToken || undefined;
    } while (continuationToken);
  }

  async delete(key: string): Promise<void> {
    await this.requests.run('delete', key, (abortSignal) => this.blob(key).deleteIfExists({ abortSignal }));
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await forEachConcurrently(inBatches(keys, DELETE_BATCH_KEYS), DELETE_REQUESTS_AT_ONCE, (batch) => this.deleteBatch(batch));
  }

  /**
   * One blob batch of deletes. Each subrequest has its own status: a missing
   * blob is no error, transient failures are sent again within the retry
   * budget, any other fails the batch naming the blob.
   */
  private async deleteBatch(keys: readonly string[]): Promise<void> {
    let remaining = [...keys];
    const label = keys.length === 1 ? keys[0]! : `${keys[0]} and ${keys.length - 1} more keys`;
    await this.requests.run('delete', label, async (abortSignal) => {
      const answer = await this.container.getBlobBatchClient().deleteBlobs(remaining.map((key) => this.blob(key)), { abortSignal });
      const failed = answer.subResponses
        .map((response, index) => ({ response, key: remaining[index]! }))
        .filter(({ response }) => response.status >= 300 && response.errorCode !== 'BlobNotFound');
      if (failed.length === 0) return;
      remaining = failed.map(({ key }) => key);
      const { response, key } = failed[0]!;
      const more = failed.length > 1 ? ` (and ${failed.length - 1} more keys)` : '';
      throw new RestError(`${key}: ${response.statusMessage}${more}`, { code: response.errorCode, statusCode: response.status });
    });
  }
}
