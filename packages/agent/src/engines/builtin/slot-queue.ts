/**
 * A fixed set of slots (a model's context sequences) handed out first come, first served. Callers
 * beyond the slots wait in a bounded line; when the line is full they are refused at once, so a burst
 * becomes a quick 503 instead of an ever-growing backlog. A waiter whose signal aborts leaves the line.
 */
export class QueueFullError extends Error {
  readonly slots: number;
  readonly waiting: number;
  constructor(slots: number, waiting: number) {
    super(`all ${slots} slots are busy and ${waiting} requests are already waiting`);
    this.name = "QueueFullError";
    this.slots = slots;
    this.waiting = waiting;
  }
}

export class QueueClosedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "QueueClosedError";
  }
}

export interface Lease<T> {
  readonly item: T;
  release(): void;
}

interface Waiter<T> {
  resolve(lease: Lease<T>): void;
  reject(err: unknown): void;
}

export class SlotQueue<T> {
  readonly #free: T[];
  readonly #size: number;
  readonly #maxWaiting: number;
  readonly #waiters: Waiter<T>[] = [];
  #closed: string | undefined;

  constructor(items: readonly T[], maxWaiting: number) {
    this.#free = [...items];
    this.#size = items.length;
    this.#maxWaiting = maxWaiting;
  }

  get size(): number {
    return this.#size;
  }
  get active(): number {
    return this.#size - this.#free.length;
  }
  get waiting(): number {
    return this.#waiters.length;
  }

  acquire(signal?: AbortSignal): Promise<Lease<T>> {
    if (this.#closed !== undefined) return Promise.reject(new QueueClosedError(this.#closed));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const item = this.#free.shift();
    if (item !== undefined) return Promise.resolve(this.#lease(item));
    if (this.#waiters.length >= this.#maxWaiting)
      return Promise.reject(new QueueFullError(this.#size, this.#waiters.length));
    return new Promise<Lease<T>>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter<T> = {
        resolve: (lease) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(lease);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Refuse new callers and every waiter; leases already out stay valid until released. */
  close(reason: string): void {
    this.#closed = reason;
    for (const w of this.#waiters.splice(0)) w.reject(new QueueClosedError(reason));
  }

  #lease(item: T): Lease<T> {
    let released = false;
    return {
      item,
      release: () => {
        if (released) return;
        released = true;
        const next = this.#closed === undefined ? this.#waiters.shift() : undefined;
        if (next) next.resolve(this.#lease(item));
        else this.#free.push(item);
      },
    };
  }
}
