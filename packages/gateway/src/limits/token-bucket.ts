/**
 * A token bucket: holds up to `capacity` tokens and refills at `capacity` per `periodMs`, continuously.
 * `take` spends tokens only when they are there; `charge` spends them after the fact and may leave the
 * bucket in debt (below zero), which later `take`s wait out. Time comes from `now`, so tests drive it.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly #perMs: number;
  readonly #now: () => number;
  #level: number;
  #at: number;

  constructor(capacity: number, periodMs: number, now: () => number) {
    if (!(capacity > 0) || !(periodMs > 0)) throw new RangeError("capacity and period must be positive");
    this.capacity = capacity;
    this.#perMs = capacity / periodMs;
    this.#now = now;
    this.#level = capacity;
    this.#at = now();
  }

  /** Tokens held now (negative: in debt). */
  get level(): number {
    this.#refill();
    return this.#level;
  }

  /** Whether the bucket is full again, i.e. no different from a new one. */
  get full(): boolean {
    return this.level >= this.capacity;
  }

  /** Milliseconds until the bucket holds `n` tokens (0 when it does now). */
  waitMs(n = 1): number {
    const missing = n - this.level;
    return missing <= 0 ? 0 : Math.ceil(missing / this.#perMs);
  }

  /** Spend `n` tokens if the bucket holds them; otherwise spend nothing. */
  take(n = 1): boolean {
    if (this.level < n) return false;
    this.#level -= n;
    return true;
  }

  /** Spend `n` tokens whether or not they are there (debt is repaid by the refill). */
  charge(n: number): void {
    if (!(n > 0)) return;
    this.#refill();
    this.#level -= n;
  }

  /** Give back `n` tokens charged before (a reservation larger than what was used); never above capacity. */
  refund(n: number): void {
    if (!(n > 0)) return;
    this.#refill();
    this.#level = Math.min(this.capacity, this.#level + n);
  }

  #refill(): void {
    const t = this.#now();
    // A clock that steps back (tests, NTP) neither refills nor drains.
    if (t > this.#at) this.#level = Math.min(this.capacity, this.#level + (t - this.#at) * this.#perMs);
    this.#at = Math.max(this.#at, t);
  }
}
