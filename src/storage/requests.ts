/**
 * What the cloud backends share around each request: retries, turning
 * "absent" and "already exists" into the storage contract's errors, one-line
 * failure messages free of secrets, and an idle timeout on response bodies.
 */
import { PassThrough, type Readable } from 'node:stream';
import { AlreadyExistsError, NotFoundError, WalshipError } from '../errors.ts';
import { RequestTimeoutError, type RetryPolicy } from './retry.ts';

/** How a backend reads its SDK's errors. */
export interface ServiceErrors {
  /** Exactly "the object (or its version) does not exist", never a network or permission failure. */
  isNotFound(error: unknown): boolean;
  /** A conditional create found the key taken. */
  isAlreadyExists(error: unknown): boolean;
  isTransient(error: unknown): boolean;
  /** One line naming the service's error code and status; must never include credentials or signed URLs. */
  describe(error: unknown): string;
}

/** A storage request that failed for good; the message is one line for the user. */
export class StorageRequestError extends WalshipError {}

export class RequestRunner {
  private readonly retry: RetryPolicy;
  private readonly errors: ServiceErrors;
  private readonly location: string;

  constructor(retry: RetryPolicy, errors: ServiceErrors, location: string) {
    this.retry = retry;
    this.errors = errors;
    this.location = location;
  }

  get requestTimeoutMs(): number {
    return this.retry.settings.requestTimeoutMs;
  }

  /** Runs one request with retries; failures become NotFoundError, AlreadyExistsError or StorageRequestError. */
  async run<T>(operation: string, key: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await this.retry.run(`${operation} ${key}`, (error) => this.errors.isTransient(error), attempt);
    } catch (error) {
      throw this.translate(operation, key, error);
    }
  }

  /** Like run(), for requests whose "not found" answer means undefined (HEAD). */
  async runUnlessMissing<T>(operation: string, key: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
    try {
      return await this.run(operation, key, attempt);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  translate(operation: string, key: string, error: unknown): Error {
    if (error instanceof WalshipError) return error;
    if (this.errors.isNotFound(error)) return new NotFoundError(`${key} is not in ${this.location}`, { cause: error });
    if (this.errors.isAlreadyExists(error)) return new AlreadyExistsError(`${key} already exists in ${this.location}`, { cause: error });
    const retried = this.errors.isTransient(error) ? ' (gave up after retries: WALG_STORAGE_MAX_ATTEMPTS, WALG_STORAGE_RETRY_TIME_LIMIT)' : '';
    const detail = error instanceof RequestTimeoutError ? error.message : redactSecrets(this.errors.describe(error));
    return new StorageRequestError(`${operation} ${key} in ${this.location} failed: ${detail}${retried}`, { cause: error });
  }

  /**
   * Passes a response body through, failing it when no bytes arrive for the
   * request timeout, so a stalled download errors out instead of hanging.
   * Errors in the body become one-line storage errors too.
   */
  guardBody(key: string, body: Readable): Readable {
    const timeoutMs = this.requestTimeoutMs;
    const guarded = new PassThrough({ highWaterMark: 1 << 20 });
    let timer: NodeJS.Timeout | undefined;
    const disarm = () => clearTimeout(timer);
    const arm = () => {
      disarm();
      timer = setTimeout(() => body.destroy(new RequestTimeoutError(timeoutMs)), timeoutMs);
    };
    // Only time the service: while our consumer applies backpressure the body is paused.
    body.on('data', arm).on('resume', arm).on('pause', disarm).on('end', disarm);
    body.once('error', (error) => {
      disarm();
      guarded.destroy(this.translate('read', key, error));
    });
    guarded.once('close', () => {
      disarm();
      if (!body.destroyed) body.destroy();
    });
    body.pipe(guarded);
    arm();
    return guarded;
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
