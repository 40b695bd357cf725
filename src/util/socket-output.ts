/**
 * A child's standard output read into memory of our own, reused: a
 * connected pair of unix stream sockets, one end the child's stdout, the
 * other read with Node's `onread`, so that libuv reads straight into one
 * buffer, each read taking all the socket holds, and hands each read on in
 * one synchronous call. A child's own stdio pipe (from child_process) cannot
 * be read that way: it hands on every 64 KiB read as a fresh buffer through a
 * stream (scripts/bench/README.md, "Logical dumps").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, describeError } from '../errors.ts';

/**
 * A source that reads into memory it reuses and hands on each read in one
 * synchronous call: the piece is valid only during that call (a source of
 * stages/pipeline.ts).
 */
export interface ReusedReads {
  /** Starts the reads: each goes to `take`, which returns false to pause them until resumeReads(); `ended` once, at the end or on an error. */
  startReads(take: (piece: Buffer) => boolean, ended: (error?: Error) => void): void;
  resumeReads(): void;
  /** Stops reading, for good. */
  destroy(): void;
}

/** Where reads land: one read takes at most what is left of it past the piece being gathered. */
const READ_MEMORY = 1 << 20;

export interface SocketOutput {
  /** The end to give the child as its stdout; destroy it once the child has it. */
  childEnd: Socket;
  /** What the child writes, in pieces of at least `minimumPiece` bytes (the last may be smaller). */
  reads: ReusedReads;
}

/** The pair, connected through a socket in a private directory (mode 0700) that is removed once the two are connected. */
export async function socketOutput(minimumPiece: number): Promise<SocketOutput> {
  const directory = await mkdtemp(join(tmpdir(), 'walship-output-')).catch((error: unknown) => {
    throw unusableTemporaryDirectory(error);
  });
  const path = join(directory, 'socket');
  const server = createServer({ pauseOnConnect: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(unusableTemporaryDirectory(error)));
      server.listen(path, resolve);
    });
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const reads = new SocketReads(path, minimumPiece);
    try {
      const childEnd = await Promise.race([accepted, reads.connectFailure]);
      return { childEnd, reads };
    } catch (error) {
      reads.destroy();
      throw error;
    }
  } finally {
    server.close();
    await rm(directory, { recursive: true, force: true });
  }
}

/** The pair's socket lives in the temporary directory, whose path a unix socket limits to about 100 characters. */
function unusableTemporaryDirectory(error: unknown): ConfigError {
  return new ConfigError(
    `cannot make the socket for a program's output in the temporary directory ${tmpdir()} (${describeError(error)}): set TMPDIR to a short path the user can write`,
    { cause: error },
  );
}

/** The reading end: reads into `memory`, gathering reads in place until a piece holds `minimumPiece` bytes. */
class SocketReads implements ReusedReads {
  private readonly memory = Buffer.allocUnsafe(READ_MEMORY);
  private readonly minimumPiece: number;
  private readonly socket: Socket;
  /** Bytes of the piece being gathered, at the start of `memory`. */
  private filled = 0;
  private take: ((piece: Buffer) => boolean) | undefined;
  private ended: ((error?: Error) => void) | undefined;
  private failure: Error | undefined;
  /** Rejects if the socket fails before it is connected. */
  readonly connectFailure: Promise<never>;

  constructor(path: string, minimumPiece: number) {
    this.minimumPiece = Math.min(minimumPiece, READ_MEMORY / 2);
    this.socket = connect({ path, onread: { buffer: () => this.memory.subarray(this.filled), callback: (bytes) => this.read(bytes) } });
    // Nothing is read until startReads.
    this.socket.pause();
    this.connectFailure = new Promise((_, reject) => this.socket.once('error', reject));
    this.connectFailure.catch(() => undefined);
    this.socket.on('error', (error) => {
      this.failure ??= error;
      this.ended?.(error);
    });
  }

  startReads(take: (piece: Buffer) => boolean, ended: (error?: Error) => void): void {
    if (this.failure) return ended(this.failure);
    this.take = take;
    this.ended = ended;
    this.socket.once('end', () => {
      if (this.filled > 0) take(this.memory.subarray(0, this.filled));
      this.filled = 0;
      ended();
    });
    this.socket.resume();
  }

  resumeReads(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** `bytes` more have landed after the piece being gathered; false pauses the reads (libuv stops reading). */
  private read(bytes: number): boolean {
    this.filled += bytes;
    if (this.filled < this.minimumPiece) return true;
    const piece = this.memory.subarray(0, this.filled);
    this.filled = 0;
    return this.take!(piece);
  }
}
