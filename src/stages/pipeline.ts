/**
 * Joins stream stages (compress, encrypt, checksum, ...) into one readable,
 * so nothing is held whole in memory and an error in any stage fails the
 * whole chain, and so the consumer, with that error.
 */
import { type Readable, type Transform, pipeline } from 'node:stream';

export function chain(source: Readable, ...stages: (Transform | undefined)[]): Readable {
  const active = stages.filter((stage): stage is Transform => stage !== undefined);
  const last = active.at(-1);
  if (!last) return source;
  // pipeline() destroys every stage on error, so the consumer of `last` sees it.
  pipeline([source, ...active], () => undefined);
  return last;
}
