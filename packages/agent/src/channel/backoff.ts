/**
 * Exponential backoff with jitter. Half of each delay is fixed and half random, so agents that lost
 * the same gateway at the same moment come back spread out rather than all at once.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: { baseMs?: number; maxMs?: number; random?: () => number } = {}) {
    this.#baseMs = opts.baseMs ?? 500;
    this.#maxMs = opts.maxMs ?? 30_000;
    this.#random = opts.random ?? Math.random;
  }

  next(): number {
    const ceiling = Math.min(this.#maxMs, this.#baseMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.round(ceiling / 2 + (this.#random() * ceiling) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after ms, or at once (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
