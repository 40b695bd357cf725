/**
 * What the cloud backends share around each request: retries, turning
 * "absent" and "already exists" into the storage contract's errors, one-line
 * failure messages free of secrets that name the permission a refused request
 * lacks, and an idle timeout on response bodies.
 */
import { Readable } from 'node:stream';
import { AlreadyExistsError, describeError, NotFoundError, WalshipError } from '../errors.ts';
import { log } from '../log/logger.ts';
import { type Attempt, RequestTimeoutError, type RetryPolicy } from './retry.ts';

/** What a request does, to name the permission it needs. */
export type Access = 'read' | 'write' | 'list' | 'delete';

/** How a backend reads its SDK's errors. */
export interface ServiceErrors {
  /** Exactly "the object (or its version) does not exist", never a network or permission failure. */
  isNotFound(error: unknown): boolean;
  /** A precondition failed: a create-only put found the key taken, or a read pinned to a version found a newer one. */
  isPreconditionFailed(error: unknown): boolean;
  isTransient(error: unknown): boolean;
  /** The credentials are valid but lack a permission for this request (not bad or expired credentials). */
  isAccessDenied(error: unknown): boolean;
  /** The permission to grant for a denied request of this kind, as the service names it. */
  permissionFor(access: Access, error: unknown): string;
  /** One line naming the service's error code and status; must never include credentials or signed URLs. */
  describe(error: unknown): string;
}

/** A storage request that failed for good; the message is one line for the user. */
export class StorageRequestError extends WalshipError {}

/**
 * Whether exactly `key` is stored, by listing it. S3 and GCS answer 403, not
 * 404, for a missing object to callers that may not list the bucket, so that
 * they learn nothing about what exists; the listing settles what a 403 means.
 */
export type KeyLister = (key: string, signal: AbortSignal) => Promise<boolean>;

/** The kind of access an operation needs; every other operation writes (put, the parts of an upload, its completion). */
function accessOf(operation: string): Access {
  if (operation === 'list' || operation === 'delete') return operation;
  return ['get', 'head', 'read'].includes(operation) ? 'read' : 'write';
}

export class RequestRunner {
  private readonly retry: RetryPolicy;
  private readonly errors: ServiceErrors;
  private readonly location: string;
  private readonly isListed: KeyLister | undefined;

  constructor(retry: RetryPolicy, errors: ServiceErrors, location: string, isListed?: KeyLister) {
    this.retry = retry;
    this.errors = errors;
    this.location = location;
    this.isListed = isListed;
  }

  /** Runs one request with retries; failures become NotFoundError, AlreadyExistsError or StorageRequestError. */
  async run<T>(operation: string, key: string, attempt: Attempt<T>): Promise<T> {
    try {
      return await this.retry.run(`${operation} ${key}`, (error) => this.errors.isTransient(error), attempt);
    } catch (error) {
      throw this.translate(operation, key, error);
    }
  }

  /**
   * Like run(), for a request that reads one object (GET, HEAD). Where the
   * backend has a KeyLister, a refused read is settled by listing the key:
   * absent is NotFoundError, present is an error naming the read permission,
   * and a refused listing is an error naming the list permission, since then
   * "missing" and "forbidden" cannot be told apart. Only a 403 costs the listing.
   */
  async runRead<T>(operation: string, key: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await this.run(operation, key, attempt);
    } catch (error) {
      if (!this.isListed || !(error instanceof StorageRequestError) || !this.errors.isAccessDenied(error.cause)) throw error;
      throw await this.settleRefusedRead(operation, key, error.cause, this.isListed);
    }
  }

  /** Like runRead(), for requests whose "not found" answer means undefined (HEAD). */
  async runUnlessMissing<T>(operation: string, key: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
    try {
      return await this.runRead(operation, key, attempt);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  private async settleRefusedRead(operation: string, key: string, refusal: unknown, isListed: KeyLister): Promise<Error> {
    const refused = `${operation} ${key} in ${this.location} was refused (${this.detail(refusal)})`;
    let listed: boolean;
    try {
      listed = await this.retry.run(`list ${key}`, (error) => this.errors.isTransient(error), (signal) => isListed(key, signal));
    } catch (error) {
      if (!this.errors.isAccessDenied(error)) return new StorageRequestError(`${refused}, and listing it failed: ${this.detail(error)}`, { cause: error });
      const permission = this.errors.permissionFor('list', error);
      return new StorageRequestError(`${refused}, and so was listing it: grant ${permission}, without which walship cannot tell a missing object from a forbidden one`, { cause: error });
    }
    if (!listed) return new NotFoundError(`${key} is not in ${this.location}`, { cause: refusal });
    return new StorageRequestError(`${refused}: the object exists; grant ${this.errors.permissionFor('read', refusal)}`, { cause: refusal });
  }

  translate(operation: string, key: string, error: unknown): Error {
    if (error instanceof WalshipError) return error;
    if (this.errors.isNotFound(error)) return new NotFoundError(`${key} is not in ${this.location}`, { cause: error });
    if (this.errors.isPreconditionFailed(error)) return new AlreadyExistsError(`${key} already exists in ${this.location}`, { cause: error });
    const retried = this.errors.isTransient(error) ? ' (gave up after retries: WALG_STORAGE_MAX_ATTEMPTS, WALG_STORAGE_RETRY_TIME_LIMIT)' : '';
    const missing = this.errors.isAccessDenied(error) ? `; grant ${this.errors.permissionFor(accessOf(operation), error)}` : '';
    return new StorageRequestError(`${operation} ${key} in ${this.location} failed: ${this.detail(error)}${retried}${missing}`, { cause: error });
  }

  private detail(error: unknown): string {
    return error instanceof RequestTimeoutError ? error.message : redactSecrets(this.errors.describe(error));
  }

  /**
   * Passes a response body on, failing it when no bytes arrive within the
   * request timeout, so a stalled download errors out instead of hanging.
   * With `reopen`, a body that breaks transiently is requested again from the
   * byte reached, of the same object version, within the attempt budget. Errors become one-line storage errors.
   */
  guardBody(key: string, body: Readable, reopen?: (offset: number, signal: AbortSignal) => Promise<Readable>): Readable {
    const { requestTimeoutMs, maxAttempts } = this.retry.settings;
    const runner = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let offset = 0;
      let current = body;
      for (let attempt = 1; ; attempt++) {
        try {
          yield* withIdleTimeout(current, requestTimeoutMs, (chunk) => (offset += chunk.length));
          return;
        } catch (error) {
          if (!reopen || !runner.errors.isTransient(error) || attempt >= maxAttempts) throw runner.translate('read', key, error);
          log.info('resuming a broken download', { key, offset, error: describeError(error) });
          current = await runner.run('get', key, (signal) =>
            reopen(offset, signal).catch((reopenError: unknown) => {
              // The rest is requested only if the object is still the same version (If-Match).
              if (runner.errors.isPreconditionFailed(reopenError)) throw new WalshipError(`${key} in ${runner.location} was replaced while it was being read`);
              throw reopenError;
            }),
          );
        }
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }
}

/** Yields the chunks of `body`, destroying it when the next one takes longer than `timeoutMs`. */
async function* withIdleTimeout(body: Readable, timeoutMs: number, onChunk: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  const chunks = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      // Only the wait for the service is timed: while our consumer is busy, nothing is pending here.
      const timer = setTimeout(() => body.destroy(new RequestTimeoutError(timeoutMs)), timeoutMs);
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } finally {
        clearTimeout(timer);
      }
      if (next.done) return;
      onChunk(next.value);
      yield next.value;
    }
  } finally {
    body.destroy();
  }
}

/** Removes anything that looks like a signature or key from text that came from an SDK. */
export function redactSecrets(text: string): string {
  return text
    .replace(/([?&](?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|access_token)=)[^&\s"']+/gi, '$1(hidden)')
    .replace(/(AccountKey=|SharedAccessSignature=)[^;\s"']+/gi, '$1(hidden)')
    .replace(/(Authorization:\s*)\S+(\s+\S+)?/gi, '$1(hidden)')
    .replace(/\s+/g, ' ')
    .trim();
}
