// Checks that must START after the caller's request (a commit), and of which one does for many callers.
//
// The threshold check that moved after a payment's commit (its channel's claim lock was busy) must see
// that payment's credit: any check of the channel that starts after the commit does. When payments of
// one channel commit close together, each used to run its own check, one after the other on the same
// lock. Here a request joins the channel's check that is waiting to start, if there is one; else it
// queues one that starts when the running one (if any) ends. So each caller gets a check that starts
// after its request, at most one check per key runs and one waits, and N payments committing while a
// check runs cost one more check, not N.
//
// Per process: checks of other processes are not seen, and need not be (each caller still gets its own
// check, shared or not). A failure reaches every caller that shared the run.

export type Coalesced<K> = (key: K, run: () => Promise<unknown>) => Promise<unknown>;

export function coalesced<K>(): Coalesced<K> {
  const waiting = new Map<K, Promise<unknown>>();
  const running = new Map<K, Promise<unknown>>();
  return (key, run) => {
    const joined = waiting.get(key);
    if (joined) return joined;
    const before = running.get(key) ?? Promise.resolve();
    const next: Promise<unknown> = before
      .catch(() => {})
      .then(async () => {
        // Started: later requests queue the next one.
        waiting.delete(key);
        running.set(key, next);
        try {
          return await run();
        } finally {
          if (running.get(key) === next) running.delete(key);
        }
      });
    waiting.set(key, next);
    return next;
  };
}
