import type { Logger } from "@beta9/http";
import type { NewUsageRow as UsageRow } from "@beta9/store";

export interface UsageSink {
  insertMany(rows: readonly UsageRow[]): Promise<void>;
}

export interface RecorderOptions {
  /** Write what is pending this often. */
  flushEveryMs?: number;
  /** Write at once when this many rows are pending. */
  batchSize?: number;
  /** Rows kept while the store cannot take them; the oldest are dropped beyond this. */
  maxPending?: number;
}

/**
 * Usage rows written in small batches: every second, or as soon as 100 are pending, one multi-row
 * INSERT, never one transaction per request on the request's path. One write at a time; a failed
 * write keeps its rows for the next (up to maxPending). close() writes what is left.
 */
export class UsageRecorder {
  readonly #sink: UsageSink;
  readonly #log: Logger;
  readonly #batchSize: number;
  readonly #maxPending: number;
  readonly #timer: NodeJS.Timeout;
  #pending: UsageRow[] = [];
  #running: Promise<void> | undefined;
  #soon: Promise<void> | undefined;
  #dropped = 0;

  constructor(sink: UsageSink, log: Logger, opts: RecorderOptions = {}) {
    this.#sink = sink;
    this.#log = log;
    this.#batchSize = opts.batchSize ?? 100;
    this.#maxPending = opts.maxPending ?? 100_000;
    this.#timer = setInterval(() => void this.flush(), opts.flushEveryMs ?? 1_000);
    this.#timer.unref();
  }

  /** Rows waiting to be written. */
  get pending(): number {
    return this.#pending.length;
  }

  record(row: UsageRow): void {
    this.#pending.push(row);
    if (this.#pending.length > this.#maxPending) {
      this.#pending.shift();
      if (this.#dropped++ === 0)
        this.#log.error(
          { max_pending: this.#maxPending },
          "usage rows are being dropped: the store does not take them",
        );
    }
    if (this.#pending.length >= this.#batchSize && !this.#running) void this.flush();
  }

  /** Write every row recorded before this call; resolves once they are written (or the write failed). */
  flush(): Promise<void> {
    if (this.#pending.length === 0 && !this.#running) return Promise.resolve();
    const next = (this.#running ?? Promise.resolve()).then(() => this.#write());
    this.#running = next;
    void next.then(() => {
      if (this.#running === next) this.#running = undefined;
    });
    return next;
  }

  /**
   * flush() on the event loop's next turn: every request that finishes meanwhile (under load, many,
   * each in its own I/O callback) has its row in the same INSERT, where flush() at once writes one
   * row a statement. Resolves as flush() does, for every row recorded before this call.
   */
  flushSoon(): Promise<void> {
    this.#soon ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.#soon = undefined;
        resolve(this.flush());
      }),
    );
    return this.#soon;
  }

  /** Stop the timer and write what is left. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    if (this.#pending.length > 0) {
      this.#log.error(
        { rows: this.#pending.length },
        "usage rows lost at shutdown: the store did not take them",
      );
    }
  }

  async #write(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      try {
        await this.#sink.insertMany(batch);
        if (this.#dropped > 0) {
          this.#log.warn({ dropped: this.#dropped }, "usage recording resumed");
          this.#dropped = 0;
        }
      } catch (err) {
        // Kept for the next try, ahead of what came meanwhile (the cap still applies).
        const all = [...batch, ...this.#pending];
        this.#dropped += Math.max(0, all.length - this.#maxPending);
        this.#pending = all.slice(-this.#maxPending);
        this.#log.warn({ err, rows: this.#pending.length }, "could not write usage rows; will retry");
        return;
      }
    }
  }
}
