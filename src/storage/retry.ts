/**
 * Retries for cloud storage requests: jittered exponential backoff for
 * transient failures only, bounded by an attempt count and a total time, and
 * a timeout on every attempt so that no request can hang. A wal-push that
 * hangs fills pg_wal; one that fails is simply retried by PostgreSQL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/config.ts';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';

export interface RetrySettings {
  /** Attempts per request, the first one included (WALG_STORAGE_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** No new attempt starts once this much time has passed since the first (WALG_STORAGE_RETRY_TIME_LIMIT). */
  totalTimeMs: number;
  /** One attempt may wait this long for a response, or a response body this long for more bytes (WALG_STORAGE_REQUEST_TIMEOUT). */
  requestTimeoutMs: number;
  /** Backoff before the first retry; doubles each time, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export function readRetrySettings(config: Config): RetrySettings {
  return {
    maxAttempts: config.integer('WALG_STORAGE_MAX_ATTEMPTS', { min: 1, max: 100, fallback: 8 }),
    totalTimeMs: config.integer('WALG_STORAGE_RETRY_TIME_LIMIT', { min: 1, max: 86_400, fallback: 300 }) * 1000,
    requestTimeoutMs: config.integer('WALG_STORAGE_REQUEST_TIMEOUT', { min: 1, max: 3_600, fallback: 60 }) * 1000,
    baseDelayMs: 200,
    maxDelayMs: 15_000,
  };
}

/** Raised when one attempt got no response (or no more response bytes) within the request timeout. */
export class RequestTimeoutError extends Error {
  readonly code = 'RequestTimeout';
  constructor(timeoutMs: number) {
    super(`no response within ${timeoutMs / 1000} s (WALG_STORAGE_REQUEST_TIMEOUT)`);
    this.name = 'RequestTimeoutError';
  }
}

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE',
  'RequestTimeout', 'TimeoutError',
]);

/** Failures of the connection itself (resets, refusals, timeouts), whatever the SDK wrapped them in. */
export function isTransientNetworkError(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const { code, name } = current as NodeJS.ErrnoException;
    if ((code && TRANSIENT_NETWORK_CODES.has(code)) || TRANSIENT_NETWORK_CODES.has(name)) return true;
    if (current instanceof RequestTimeoutError) return true;
    if (/socket hang up|other side closed|premature close|ECONNRESET/i.test(current.message)) return true;
  }
  return false;
}

/** HTTP statuses worth another attempt: timeouts, throttling and server-side failures. */
export function isTransientStatus(status: number | undefined): boolean {
  return status === 408 || status === 429 || (status !== undefined && status >= 500 && status <= 599 && status !== 501);
}

export class RetryPolicy {
  readonly settings: RetrySettings;

  constructor(settings: RetrySettings) {
    this.settings = settings;
  }

  /**
   * Runs `attempt` until it succeeds, fails non-transiently, or the attempt
   * or time budget is spent; the last error is thrown. Each attempt gets a
   * signal that aborts it after the request timeout, and a function that
   * starts that timeout again: an upload calls it as its body goes out, so a
   * long one is timed from its last progress, not from its start.
   */
  async run<T>(what: string, isTransient: (error: unknown) => boolean, attempt: Attempt<T>): Promise<T> {
    const { maxAttempts, totalTimeMs, requestTimeoutMs } = this.settings;
    const deadline = Date.now() + totalTimeMs;
    for (let attemptNumber = 1; ; attemptNumber++) {
      try {
        return await withTimeout(requestTimeoutMs, attempt);
      } catch (error) {
        const delay = this.backoff(attemptNumber);
        if (!isTransient(error) || attemptNumber >= maxAttempts || Date.now() + delay >= deadline) throw error;
        log.info('retrying after a transient storage error', { request: what, attempt: attemptNumber, delayMs: delay, error: describeError(error) });
        await sleep(delay);
      }
    }
  }

  /** "Full jitter": a uniform delay up to the exponential bound, so clients do not retry in lockstep. */
  private backoff(attemptNumber: number): number {
    const bound = Math.min(this.settings.maxDelayMs, this.settings.baseDelayMs * 2 ** (attemptNumber - 1));
    return Math.round(Math.random() * bound);
  }
}

/** One attempt of a request: `signal` aborts it; `progress` says it is still moving, and restarts its timeout. */
export type Attempt<T> = (signal: AbortSignal, progress: () => void) => Promise<T>;

async function withTimeout<T>(timeoutMs: number, attempt: Attempt<T>): Promise<T> {
  const controller = new AbortController();
  const timeout = new RequestTimeoutError(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(timeout);
      reject(timeout);
    }, timeoutMs);
  });
  try {
    // Racing as well as aborting: an SDK that ignores the signal still cannot hold us past the timeout.
    return await Promise.race([attempt(controller.signal, () => timer?.refresh()), expired]);
  } finally {
    clearTimeout(timer);
  }
}
