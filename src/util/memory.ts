import { setFlagsFromString } from 'node:v8';

/**
 * The binary's bound on V8's young generation. On a machine with plenty of
 * memory V8 lets each of the young generation's semi-spaces grow to 64 MiB
 * once enough objects have survived a scavenge, and a long listing always
 * gets there: a confirmed delete on 200,000 WAL objects had 128 MiB of young
 * generation for 18 MiB of old, and peaked at 252 MB of RSS. Capped at 16 MiB,
 * scavenges come more often but cost what survives, which stays small
 * (scripts/bench/README.md, retention). The single executable starts with it
 * (scripts/build.ts), as it does with MAIN_THREAD_COMPILATION.
 */
export const BOUNDED_YOUNG_GENERATION = ['--max-semi-space-size=16'];

/**
 * Keeps V8's young generation at the size it has now (semi-spaces of 1 MiB
 * at the start) for the rest of the process, for the background helpers.
 * Over S3 the SDK's and the HTTP client's objects survive a few scavenges
 * each, so V8 grew the prefetcher's young generation to its bound (32 MiB
 * of 49 MiB of heap) and the pusher's to 16 MiB; those pages stay committed.
 * The flag that caps the growth can only be given at start, and the binary
 * starts every command with the same flags; the growth factor is read each
 * time V8 would grow the space.
 */
export function stopYoungGenerationGrowth(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
