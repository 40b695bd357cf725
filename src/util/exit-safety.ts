/**
 * Keeps process exit from hanging. A V8 compiler thread that runs out of heap
 * while compiling in the background waits for the main thread to collect
 * garbage; if the main thread is already exiting, it waits to join that thread
 * and both wait forever (nodejs/node#64274, still open for Node 24.21). An
 * archive_command that never exits stops archiving, and a look-ahead pusher
 * that never exits stays in memory for good, so walship compiles on the main
 * thread only: Sparkplug, Maglev and TurboFan alike.
 *
 * The flags must be given at start-up: the single executable has them as its
 * `execArgv` (scripts/build.ts), the test runner on its command line. V8 makes
 * its compile dispatchers as the isolate starts, so `v8.setFlagsFromString`
 * afterwards changes the flags' values but not the dispatchers: with it, a
 * hung pusher was found joining a concurrent Maglev job, and `--trace-opt`
 * shows Maglev and TurboFan jobs still `kConcurrent`. From the command line
 * they are `kSynchronous`.
 */
export const MAIN_THREAD_COMPILATION = ['--no-concurrent-sparkplug', '--no-concurrent-recompilation', '--no-concurrent-osr'];
