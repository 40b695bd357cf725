/**
 * How archive recovery goes, read from the server log as it grows. The lines
 * are PostgreSQL's own (with lc_messages = 'C'), whatever log_line_prefix is:
 *
 *   LOG:  restored log file "000000010000000000000005" from archive
 *   LOG:  consistent recovery state reached at 0/5000100
 *   LOG:  redo done at 0/7000060 system usage: ...
 *   LOG:  database system is ready to accept connections      (promoted; not "read-only")
 *   FATAL:  recovery ended before configured recovery target was reached
 */
import { open } from 'node:fs/promises';
import { isMissing } from '../fs/missing.ts';
import { parseLsn } from './lsn.ts';

export interface RecoveryProgress {
  /** WAL segments restored with restore_command so far (each counted once: recovery may ask for one twice). */
  restoredSegments: number;
  /** Where the server reached a consistent state, once it has. */
  consistentAt?: bigint;
  /** Where redo ended, once it has. */
  redoDoneAt?: bigint;
  /** Recovery is over and the server accepts writes. */
  ready: boolean;
  /** The first FATAL or PANIC line: why the server stopped, when it did. */
  fatal?: string;
}

const RESTORED = /LOG:\s+restored log file "([0-9A-F]{24})" from archive/;
const CONSISTENT = /LOG:\s+consistent recovery state reached at ([0-9A-F]+\/[0-9A-F]+)/;
const REDO_DONE = /LOG:\s+redo done at ([0-9A-F]+\/[0-9A-F]+)/;
const READY = /LOG:\s+database system is ready to accept connections/;
const FATAL = /(?:FATAL|PANIC):\s+(.*)$/;
const CHUNK_BYTES = 1 << 16;

/** Reads a server log from where it left off, line by line. */
export class RecoveryLog {
  readonly path: string;
  private offset = 0;
  private partial = '';
  private readonly progress: RecoveryProgress = { restoredSegments: 0, ready: false };
  private readonly restored = new Set<string>();

  constructor(path: string) {
    this.path = path;
  }

  /** What the log says so far (reading what was added since the last call). */
  async read(): Promise<RecoveryProgress> {
    const handle = await open(this.path, 'r').catch((error: unknown) => {
      if (isMissing(error)) return undefined; // not written yet
      throw error;
    });
    if (!handle) return { ...this.progress };
    try {
      const buffer = Buffer.alloc(CHUNK_BYTES);
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        const lines = (this.partial + buffer.toString('utf8', 0, bytesRead)).split('\n');
        this.partial = lines.pop()!;
        for (const line of lines) this.note(line);
      }
    } finally {
      await handle.close();
    }
    return { ...this.progress };
  }

  private note(line: string): void {
    const progress = this.progress;
    const restored = RESTORED.exec(line);
    if (restored) {
      this.restored.add(restored[1]!);
      progress.restoredSegments = this.restored.size;
    } else if (READY.test(line)) {
      progress.ready = true;
    }
    const consistent = CONSISTENT.exec(line);
    if (consistent) progress.consistentAt ??= parseLsn(consistent[1]!);
    const redoDone = REDO_DONE.exec(line);
    if (redoDone) progress.redoDoneAt = parseLsn(redoDone[1]!);
    const fatal = FATAL.exec(line);
    if (fatal) progress.fatal ??= fatal[1]!.trim();
  }
}
