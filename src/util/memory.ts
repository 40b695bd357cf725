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
