/**
 * Exit codes are part of walship's API: archive_command and restore_command
 * read them, so every code below is documented in the README.
 */
export const ExitCode = {
  ok: 0,
  /** Any failure. PostgreSQL's archiver retries; a standby retries later. */
  failure: 1,
  /** wal-fetch: the file is not in the archive (WAL-G's code). */
  notFound: 74,
  /**
   * wal-fetch in targeted recovery: an error that is not "not found".
   * PostgreSQL treats any status above 125 as fatal and stops recovery
   * instead of promoting on a partial archive.
   */
  fatalRecoveryError: 255,
} as const;

/**
 * An error whose message is already one clear line for the user: no stack
 * trace is printed for it.
 */
export class WalshipError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad configuration or command-line input. */
export class ConfigError extends WalshipError {}

/** The requested object does not exist in storage. */
export class NotFoundError extends WalshipError {}

/** A conditional create found an object already stored under the key. */
export class AlreadyExistsError extends WalshipError {}

/** Stored data failed verification (checksum, frame or size mismatch). */
export class IntegrityError extends WalshipError {}

/** wal-push refused to replace stored content that differs from the local file. */
export class OverwriteRefusedError extends WalshipError {}

/** Renders any thrown value as one line, without a stack trace. */
export function describeError(error: unknown): string {
  if (error instanceof WalshipError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
