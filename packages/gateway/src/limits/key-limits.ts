import { TokenBucket } from "./token-bucket.ts";

const MINUTE_MS = 60_000;

export interface Limits {
  /** Requests per minute; null for none. */
  rpm: number | null;
  /** Tokens (prompt + completion) per minute; null for none. */
  tpm: number | null;
}

export type Admission = { ok: true } | { ok: false; retryAfterS: number; reason: "rpm" | "tpm" };

interface Buckets {
  rpm: TokenBucket | undefined;
  tpm: TokenBucket | undefined;
}

/**
 * Per-key request and token limits, in memory (each gateway replica counts its own). A request is
 * admitted when the key has a request to spend and its token bucket is not empty or in debt; the
 * answer's tokens are charged afterwards, so a key may go into debt and is refused until it refills.
 */
export class KeyLimits {
  readonly #now: () => number;
  readonly #keys = new Map<string, Buckets>();

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Admit one request of `keyId` under `limits` (the key's current ones), spending one request. */
  admit(keyId: string, limits: Limits): Admission {
    if (limits.rpm === null && limits.tpm === null) {
      this.#keys.delete(keyId);
      return { ok: true };
    }
    const b = this.#buckets(keyId, limits);
    const rpmWait = b.rpm?.waitMs(1) ?? 0;
    const tpmWait = b.tpm?.waitMs(1) ?? 0;
    if (rpmWait > 0 || tpmWait > 0) {
      return {
        ok: false,
        retryAfterS: Math.max(1, Math.ceil(Math.max(rpmWait, tpmWait) / 1000)),
        reason: rpmWait >= tpmWait ? "rpm" : "tpm",
      };
    }
    b.rpm?.take(1);
    return { ok: true };
  }

  /** Charge the tokens an answer used to its key (nothing when the key has no token limit). */
  charge(keyId: string, tokens: number): void {
    this.#keys.get(keyId)?.tpm?.charge(tokens);
  }

  /** Forget keys whose buckets are full again: a new bucket would be the same. */
  prune(): void {
    for (const [id, b] of this.#keys) {
      if ((b.rpm?.full ?? true) && (b.tpm?.full ?? true)) this.#keys.delete(id);
    }
  }

  /** Keys tracked now (tests). */
  get size(): number {
    return this.#keys.size;
  }

  #buckets(keyId: string, limits: Limits): Buckets {
    let b = this.#keys.get(keyId);
    if (!b) {
      b = { rpm: undefined, tpm: undefined };
      this.#keys.set(keyId, b);
    }
    b.rpm = this.#resized(b.rpm, limits.rpm);
    b.tpm = this.#resized(b.tpm, limits.tpm);
    return b;
  }

  /** The bucket for `limit`: the same one while the limit holds; a new one (debt kept) when it changes. */
  #resized(bucket: TokenBucket | undefined, limit: number | null): TokenBucket | undefined {
    if (limit === null) return undefined;
    if (bucket?.capacity === limit) return bucket;
    const next = new TokenBucket(limit, MINUTE_MS, this.#now);
    if (bucket) next.charge(limit - Math.min(bucket.level, limit));
    return next;
  }
}

/** The sentence a refused caller reads: which limit, and when to come back. */
export function limitMessage(refused: Extract<Admission, { ok: false }>, limits: Limits): string {
  const what =
    refused.reason === "rpm"
      ? `this API key may make ${limits.rpm} requests per minute`
      : `this API key may use ${limits.tpm} tokens per minute and has used them`;
  return `rate limit reached: ${what}; retry in ${refused.retryAfterS} s, or ask an admin for a key with a higher limit`;
}
