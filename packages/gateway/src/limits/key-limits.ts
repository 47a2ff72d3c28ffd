import { TokenBucket } from "./token-bucket.ts";

const MINUTE_MS = 60_000;

export interface Limits {
  /** Requests per minute; null for none. */
  rpm: number | null;
  /** Tokens (prompt + completion) per minute; null for none. */
  tpm: number | null;
}

/** The workspace's limits, for all its keys together (set by the pool's operator). */
export interface WorkspaceLimits {
  id: string;
  limits: Limits;
}

export type Admission =
  | { ok: true; reservation: Reservation }
  | {
      ok: false;
      retryAfterS: number;
      /** Which limit: requests or tokens per minute, or requests at once. */
      reason: "rpm" | "tpm" | "concurrency";
      /** Whose limit: the key's own, or its workspace's. */
      scope: "key" | "workspace";
      limit: number;
    };

/**
 * What an admitted request holds until its answer ends: its estimated tokens (charged already, so
 * requests admitted meanwhile see them) and its place among the key's requests at once. `settle`
 * charges what it really used instead and frees the place; only its first call counts.
 */
export interface Reservation {
  settle(tokens: number): void;
}

/** What one request asks of its key at admission. */
export interface Ask {
  /** Tokens it may use: its prompt's estimate plus the most it may generate. */
  tokens: number;
  /** Requests the key may have under way at once; null for no bound. */
  concurrency: number | null;
}

interface Buckets {
  rpm: TokenBucket | undefined;
  tpm: TokenBucket | undefined;
}

/** [requests, tokens] a key spent. */
export type Spent = [requests: number, tokens: number];

/** A key idle this long leaves the published spending (and starts again from zero). */
const SPENDING_KEPT_MS = 5 * MINUTE_MS;

/**
 * Per-key request and token limits, in memory. A request is admitted when the key has a request to
 * spend, its token bucket is not empty or in debt, and it has fewer requests under way than its
 * concurrency bound. An admitted request reserves the tokens it may use at once (so requests at the
 * same moment see each other's), and settles to what it used when it ends; a key may go into debt
 * and is refused until it refills. With several gateway replicas, each
 * publishes what its keys spent (`spending`) and charges what the others spent (`chargeElsewhere`),
 * so a key's limits hold across them, a couple of seconds behind.
 */
export class KeyLimits {
  readonly #now: () => number;
  readonly #keys = new Map<string, Buckets>();
  /** What each key with limits spent here, in total since its first use of late. */
  readonly #spent = new Map<string, { total: Spent; at: number }>();
  /** Spent elsewhere by keys with no bucket here yet: charged when their first request comes. */
  readonly #owedElsewhere = new Map<string, { owed: Spent; at: number }>();
  /** Requests under way per key (only keys with some). */
  readonly #inFlight = new Map<string, number>();

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * Admit one request of `keyId` under `limits` (the key's current ones) and, when given, under its
   * workspace's limits too; spends one request of each, or of none when either refuses.
   */
  admit(
    keyId: string,
    limits: Limits,
    workspace?: WorkspaceLimits,
    ask: Ask = { tokens: 0, concurrency: null },
  ): Admission {
    const running = this.#inFlight.get(keyId) ?? 0;
    if (ask.concurrency !== null && running >= ask.concurrency) {
      return { ok: false, retryAfterS: 1, reason: "concurrency", scope: "key", limit: ask.concurrency };
    }
    const parts: { id: string; limits: Limits; scope: "key" | "workspace" }[] = [
      { id: keyId, limits, scope: "key" },
    ];
    if (workspace)
      parts.push({ id: workspaceBucket(workspace.id), limits: workspace.limits, scope: "workspace" });
    const admitted: { id: string; b: Buckets }[] = [];
    let refused: Extract<Admission, { ok: false }> | undefined;
    let longest = 0;
    for (const p of parts) {
      if (p.limits.rpm === null && p.limits.tpm === null) {
        this.#keys.delete(p.id);
        continue;
      }
      const b = this.#buckets(p.id, p.limits);
      const rpmWait = b.rpm?.waitMs(1) ?? 0;
      const tpmWait = b.tpm?.waitMs(1) ?? 0;
      const wait = Math.max(rpmWait, tpmWait);
      if (wait > longest) {
        longest = wait;
        const reason = rpmWait >= tpmWait ? "rpm" : "tpm";
        refused = {
          ok: false,
          retryAfterS: Math.max(1, Math.ceil(wait / 1000)),
          reason,
          scope: p.scope,
          limit: (reason === "rpm" ? p.limits.rpm : p.limits.tpm) ?? 0,
        };
      }
      admitted.push({ id: p.id, b });
    }
    if (refused) return refused;
    const reserved = Math.max(0, Math.round(ask.tokens));
    for (const { id, b } of admitted) {
      b.rpm?.take(1);
      b.tpm?.charge(reserved);
      this.#count(id, 1, 0);
    }
    this.#inFlight.set(keyId, running + 1);
    let settled = false;
    const settle = (tokens: number) => {
      if (settled) return;
      settled = true;
      const left = (this.#inFlight.get(keyId) ?? 1) - 1;
      if (left > 0) this.#inFlight.set(keyId, left);
      else this.#inFlight.delete(keyId);
      for (const { id } of admitted) {
        const limit = id === keyId ? limits : workspace?.limits;
        this.#settleOne(id, reserved, Math.max(0, tokens), limit);
      }
    };
    return { ok: true, reservation: { settle } };
  }

  /** Charge the tokens used instead of those reserved: the difference more, or back. */
  #settleOne(id: string, reserved: number, used: number, limits: Limits | undefined): void {
    if (used >= reserved) {
      if (used > reserved) this.#chargeOne(id, used - reserved, limits, false);
    } else this.#keys.get(id)?.tpm?.refund(reserved - used);
    // What peers charge is what was used, published once known.
    if (used > 0 && (limits?.tpm != null || this.#keys.get(id)?.tpm)) this.#count(id, 0, used);
  }

  /** Requests of `keyId` under way now (tests, metrics). */
  inFlight(keyId: string): number {
    return this.#inFlight.get(keyId) ?? 0;
  }

  /**
   * Charge the tokens an answer used to its key (nothing when the key has no token limit). `limits`
   * brings back a bucket pruned while the answer ran (it was full then; the answer's tokens count).
   */
  charge(keyId: string, tokens: number, limits?: Limits, workspace?: WorkspaceLimits): void {
    if (!(tokens > 0)) return;
    this.#chargeOne(keyId, tokens, limits);
    if (workspace) this.#chargeOne(workspaceBucket(workspace.id), tokens, workspace.limits);
  }

  #chargeOne(id: string, tokens: number, limits: Limits | undefined, count = true): void {
    const b = this.#keys.get(id) ?? (limits?.tpm != null ? this.#buckets(id, limits) : undefined);
    if (!b?.tpm) return;
    b.tpm.charge(tokens);
    if (count) this.#count(id, 0, tokens);
  }

  /** Each key's total spent here, for the keys used in the last few minutes (what peers charge). */
  spending(): Record<string, Spent> {
    const now = this.#now();
    const out: Record<string, Spent> = {};
    for (const [id, s] of this.#spent) {
      if (now - s.at > SPENDING_KEPT_MS) this.#spent.delete(id);
      else out[id] = [...s.total];
    }
    return out;
  }

  /** Charge what `keyId` spent at another replica to its buckets here (never refused: already spent). */
  chargeElsewhere(keyId: string, [requests, tokens]: Spent): void {
    if (!(requests > 0) && !(tokens > 0)) return;
    const b = this.#keys.get(keyId);
    if (b) {
      if (requests > 0) b.rpm?.charge(requests);
      if (tokens > 0) b.tpm?.charge(tokens);
      return;
    }
    const now = this.#now();
    const o = this.#owedElsewhere.get(keyId);
    const owed: Spent = o && now - o.at < MINUTE_MS ? o.owed : [0, 0];
    this.#owedElsewhere.set(keyId, { owed: [owed[0] + requests, owed[1] + tokens], at: now });
  }

  #count(keyId: string, requests: number, tokens: number): void {
    const s = this.#spent.get(keyId);
    if (s) {
      s.total[0] += requests;
      s.total[1] += tokens;
      s.at = this.#now();
    } else this.#spent.set(keyId, { total: [requests, tokens], at: this.#now() });
  }

  /** Forget keys whose buckets are full again: a new bucket would be the same. */
  prune(): void {
    for (const [id, b] of this.#keys) {
      if ((b.rpm?.full ?? true) && (b.tpm?.full ?? true)) this.#keys.delete(id);
    }
    const now = this.#now();
    for (const [id, o] of this.#owedElsewhere) if (now - o.at >= MINUTE_MS) this.#owedElsewhere.delete(id);
    for (const [id, s] of this.#spent) if (now - s.at > SPENDING_KEPT_MS) this.#spent.delete(id);
  }

  /** Keys tracked now (tests). */
  get size(): number {
    return this.#keys.size;
  }

  #buckets(keyId: string, limits: Limits): Buckets {
    let b = this.#keys.get(keyId);
    const fresh = !b;
    if (!b) {
      b = { rpm: undefined, tpm: undefined };
      this.#keys.set(keyId, b);
    }
    b.rpm = this.#resized(b.rpm, limits.rpm);
    b.tpm = this.#resized(b.tpm, limits.tpm);
    const o = fresh ? this.#owedElsewhere.get(keyId) : undefined;
    if (o) {
      this.#owedElsewhere.delete(keyId);
      // Spent elsewhere lately: the key starts as used as that, but never owes more than a minute's
      // worth (what it spent before then has refilled), however long it was busy there.
      if (this.#now() - o.at < MINUTE_MS) {
        if (b.rpm && o.owed[0] > 0) b.rpm.charge(Math.min(o.owed[0], b.rpm.capacity));
        if (b.tpm && o.owed[1] > 0) b.tpm.charge(Math.min(o.owed[1], b.tpm.capacity));
      }
    }
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
export function limitMessage(refused: Extract<Admission, { ok: false }>): string {
  if (refused.reason === "concurrency") {
    return `too many requests at once: this API key may have ${refused.limit} requests under way at a time; retry when one of them has ended, or ask the pool's operator for a higher bound`;
  }
  const key = refused.scope === "key";
  const what =
    refused.reason === "rpm"
      ? key
        ? `this API key may make ${refused.limit} requests per minute`
        : `this workspace's keys may make ${refused.limit} requests per minute together`
      : key
        ? `this API key may use ${refused.limit} tokens per minute and has used them`
        : `this workspace's keys may use ${refused.limit} tokens per minute together and have used them`;
  const ask = key
    ? "ask an admin for a key with a higher limit"
    : "ask the pool's operator for a higher limit";
  return `rate limit reached: ${what}; retry in ${refused.retryAfterS} s, or ${ask}`;
}

/** The stable code of a refusal: a rate limit, or too many requests at once. */
export function limitCode(refused: Extract<Admission, { ok: false }>): string {
  return refused.reason === "concurrency" ? "too_many_concurrent_requests" : "rate_limited";
}

/** A workspace's buckets live beside its keys', under an id no key id can take. */
function workspaceBucket(workspaceId: string): string {
  return `workspace:${workspaceId}`;
}
