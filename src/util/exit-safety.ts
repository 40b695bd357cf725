/**
 * Keeps process exit from hanging. A V8 compiler thread that runs out of heap
 * while compiling in the background waits for the main thread to collect
 * garbage; if the main thread is already exiting, it waits to join that thread
 * and both wait forever (nodejs/node#64274, still open for Node 24.21). An
 * archive_command that never exits stops archiving, so walship compiles on the
 * main thread only. Measured under CPU load: 5 of 20 backup-push runs hung
 * without this, none of 60 with it (scripts/soak/exit-hangs.sh); it costs
 * about 2 ms of start-up.
 *
 * Imported first by the entry point, so it runs before any command code.
 */
export const MAIN_THREAD_COMPILATION = ['--no-concurrent-sparkplug', '--no-concurrent-recompilation', '--no-concurrent-osr'];

const v8 = process.getBuiltinModule('node:v8');
for (const flag of MAIN_THREAD_COMPILATION) v8.setFlagsFromString(flag);
