/**
 * Work in flight, at most `limit` promises at once. The first failure stops
 * new work: room() and done() then throw it, but only once everything still
 * in flight has settled, so nothing is left running behind the caller (who
 * may be about to remove what that work writes).
 */
export class InFlight {
  private readonly limit: number;
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  /** Resolves once fewer than `limit` are in flight; after a failure, throws it instead. */
  async room(): Promise<void> {
    while (this.running.size >= this.limit && !this.failure) await Promise.race(this.running);
    if (this.failure) {
      await this.settled();
      throw this.failure.error;
    }
  }

  /** Tracks `work`, started after room() resolved. */
  add(work: Promise<unknown>): void {
    const tracked: Promise<void> = work.then(
      () => void this.running.delete(tracked),
      (error: unknown) => {
        this.running.delete(tracked);
        this.failure ??= { error };
      },
    );
    this.running.add(tracked);
  }

  /** Waits for everything in flight; throws the first failure. */
  async done(): Promise<void> {
    await this.settled();
    if (this.failure) throw this.failure.error;
  }

  /** Waits for everything in flight and never throws: for cleaning up after a failure of one's own. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }
}

/**
 * Runs `task` over `items` with at most `limit` running at once. The first
 * failure stops new tasks and is rethrown once the running ones have settled.
 */
export async function forEachConcurrently<T>(items: Iterable<T>, limit: number, task: (item: T) => Promise<void>): Promise<void> {
  const inFlight = new InFlight(limit);
  for (const item of items) {
    await inFlight.room();
    inFlight.add(task(item));
  }
  await inFlight.done();
}
