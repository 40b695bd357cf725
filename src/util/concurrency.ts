/** Runs `task` over `items` with at most `limit` running at once; settles every task. */
export async function forEachConcurrently<T>(items: Iterable<T>, limit: number, task: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  const worker = async () => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) await task(next.value);
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}
