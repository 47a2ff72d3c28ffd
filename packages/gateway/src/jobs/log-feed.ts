/**
 * Wakes clients following a job's logs on this gateway when its run, followed here, adds lines or
 * changes state. A run followed by another replica is seen by polling the store (the wait's bound).
 */
export class LogFeed {
  readonly #waiters = new Map<string, Set<() => void>>();

  notify(jobId: string): void {
    const set = this.#waiters.get(jobId);
    if (!set) return;
    this.#waiters.delete(jobId);
    for (const wake of set) wake();
  }

  /** Resolves when the job has news, after `ms`, or when `signal` aborts, whichever comes first. */
  wait(jobId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(jobId);
      if (!set) {
        set = new Set();
        this.#waiters.set(jobId, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        const s = this.#waiters.get(jobId);
        s?.delete(done);
        if (s?.size === 0) this.#waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }

  /** Clients waiting now (for tests and metrics). */
  waiting(): number {
    let n = 0;
    for (const s of this.#waiters.values()) n += s.size;
    return n;
  }
}
