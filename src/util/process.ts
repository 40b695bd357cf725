/** Whether a process exists (one owned by another user counts too). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `work` with a signal that Ctrl-C or a service manager's SIGTERM
 * aborts, so that it stops and cleans up instead of dying midway. The
 * handler stays in place while the work cleans up, so that no other handler
 * takes the signal for unhandled and ends the process; a second signal does.
 */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const interruption = new AbortController();
  const stopListening = () => {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  };
  function interrupt(signal: NodeJS.Signals) {
    if (!interruption.signal.aborted) return interruption.abort();
    stopListening();
    process.kill(process.pid, signal);
  }
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    return await work(interruption.signal);
  } finally {
    stopListening();
  }
}

/**
 * `work`, or a rejection with `reason()` as soon as `signal` aborts; work
 * still running then is left to finish unobserved, so use it only for work
 * whose cleanup does not depend on it (a client of a server that is stopped next).
 */
export function unlessAborted<T>(signal: AbortSignal, work: Promise<T>, reason: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(reason());
  return new Promise((resolve, reject) => {
    const abort = () => reject(reason());
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
