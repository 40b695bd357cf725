/**
 * Gives a long stream's buffers back promptly. Every piece read from a pipe
 * is a new buffer whose memory lives outside V8's heap, behind a small
 * object in the young generation. That generation fills slowly, so V8
 * collects on external memory alone, about every 64 MiB: a stream of
 * gigabytes then holds tens of megabytes of dead buffers at any time. A
 * scavenge (a young-generation collection, about a millisecond) after every
 * few megabytes keeps that small.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { WatchStage } from './pipeline.ts';

type Collect = (options: { type: 'minor' | 'major' }) => void;
let collect: Collect | undefined;

/** V8's gc(), which a new context has once --expose-gc is set; loaded on first use. */
function collector(): Collect {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  }
  return collect;
}

/** A watch stage that runs a scavenge after every `everyBytes` that pass. */
export function reclaimStage(everyBytes: number): WatchStage {
  let since = 0;
  return {
    name: 'reclaim',
    update(piece) {
      since += piece.length;
      if (since < everyBytes) return;
      since = 0;
      collector()({ type: 'minor' });
    },
    finish: () => undefined,
  };
}

/**
 * A full collection once the process holds `bytes` of buffers. Between the
 * items of a background loop: a buffer that lived through a whole upload has
 * left the young generation, so only a full collection frees it (about
 * 2 ms with the helpers' small heap).
 */
export function reclaimBuffersPast(bytes: number): void {
  if (process.memoryUsage().arrayBuffers >= bytes) collector()({ type: 'major' });
}
