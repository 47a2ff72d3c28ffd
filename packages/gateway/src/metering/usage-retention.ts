import { setImmediate as yieldToEvents } from "node:timers/promises";
import type { Logger } from "@beta9/http";

export interface UsagePruner {
  removeBefore(before: number, limit: number): Promise<number>;
}

/** How often rows past the retention are removed. */
const EVERY_MS = 3_600_000;
/** Rows per delete: a few ms each, with requests and heartbeats served between them. */
const BATCH = 2_000;

/**
 * Usage rows are kept for `retentionMs` (`--usage-retention`, 0 keeps them forever): removed once when
 * the gateway starts and every hour after, so the table holds a bounded window and `b9 usage` stays
 * fast. With several replicas each prunes; a delete of rows already gone costs nothing.
 */
export class UsageRetention {
  readonly #store: UsagePruner;
  readonly #log: Logger;
  readonly #retentionMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<void> = Promise.resolve();

  constructor(store: UsagePruner, log: Logger, retentionMs: number) {
    this.#store = store;
    this.#log = log;
    this.#retentionMs = retentionMs;
  }

  start(): void {
    if (this.#retentionMs <= 0 || this.#timer) return;
    void this.prune();
    this.#timer = setInterval(() => void this.prune(), EVERY_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Remove what is older than the retention now; resolves when done (a failure is logged, not thrown). */
  prune(now = Date.now()): Promise<void> {
    if (this.#retentionMs <= 0) return this.#running;
    this.#running = this.#running.then(async () => {
      try {
        let removed = 0;
        for (;;) {
          const n = await this.#store.removeBefore(now - this.#retentionMs, BATCH);
          removed += n;
          if (n < BATCH || this.#stopped) break;
          await yieldToEvents();
        }
        if (removed > 0)
          this.#log.info(
            { removed, retention_ms: this.#retentionMs },
            "usage rows past the retention removed",
          );
      } catch (err) {
        this.#log.warn({ err }, "could not remove usage rows past the retention; will retry");
      }
    });
    return this.#running;
  }
}
