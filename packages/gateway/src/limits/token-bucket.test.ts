import { describe, expect, it } from "vitest";
import { KeyLimits } from "./key-limits.ts";
import { TokenBucket } from "./token-bucket.ts";

/** A clock the test moves by hand. */
function clock(start = 1_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe("TokenBucket", () => {
  it("starts full, spends what it holds and refuses the rest", () => {
    const c = clock();
    const b = new TokenBucket(3, 60_000, c.now);
    expect(b.level).toBe(3);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    expect(b.level).toBe(0);
  });

  it("refills continuously at capacity per period, never above capacity", () => {
    const c = clock();
    const b = new TokenBucket(60, 60_000, c.now);
    for (let i = 0; i < 60; i++) b.take();
    expect(b.take()).toBe(false);
    expect(b.waitMs()).toBe(1_000);
    c.advance(999);
    expect(b.take()).toBe(false);
    c.advance(1);
    expect(b.take()).toBe(true);
    c.advance(10 * 60_000);
    expect(b.level).toBe(60);
    expect(b.full).toBe(true);
  });

  it("takes nothing when it cannot take all", () => {
    const c = clock();
    const b = new TokenBucket(10, 60_000, c.now);
    expect(b.take(11)).toBe(false);
    expect(b.level).toBe(10);
    expect(b.take(10)).toBe(true);
  });

  it("goes into debt on a charge and waits the debt out", () => {
    const c = clock();
    const b = new TokenBucket(100, 60_000, c.now);
    b.charge(250);
    expect(b.level).toBe(-150);
    // 151 tokens at 100 a minute to hold one again.
    expect(b.waitMs(1)).toBe(90_600);
    c.advance(90_599);
    expect(b.take()).toBe(false);
    c.advance(1);
    expect(b.take()).toBe(true);
  });

  it("ignores empty charges and a clock that steps back", () => {
    const c = clock();
    const b = new TokenBucket(10, 1_000, c.now);
    b.charge(0);
    b.charge(-5);
    b.charge(Number.NaN);
    expect(b.level).toBe(10);
    b.take(10);
    c.advance(-5_000);
    expect(b.level).toBe(0);
    c.advance(5_100);
    expect(b.level).toBeCloseTo(1);
  });

  it("refuses a bucket that could never hold a token", () => {
    expect(() => new TokenBucket(0, 60_000, () => 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0, () => 0)).toThrow(RangeError);
  });
});

describe("KeyLimits", () => {
  it("admits a key without limits every time and keeps nothing for it", () => {
    const l = new KeyLimits(clock().now);
    for (let i = 0; i < 1000; i++) expect(l.admit("k", { rpm: null, tpm: null }).ok).toBe(true);
    l.charge("k", 1_000_000);
    expect(l.size).toBe(0);
  });

  it("refuses the request over rpm with the seconds until the next one", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: 2, tpm: null };
    expect(l.admit("k", limits)).toMatchObject({ ok: true });
    expect(l.admit("k", limits)).toMatchObject({ ok: true });
    expect(l.admit("k", limits)).toEqual({
      ok: false,
      retryAfterS: 30,
      reason: "rpm",
      scope: "key",
      limit: limits.rpm,
    });
    // Another key has its own bucket.
    expect(l.admit("other", limits).ok).toBe(true);
    c.advance(29_000);
    expect(l.admit("k", limits)).toMatchObject({ ok: false, retryAfterS: 1 });
    c.advance(1_000);
    expect(l.admit("k", limits).ok).toBe(true);
  });

  it("charges tokens after the answer and refuses a key in debt until it refills", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: null, tpm: 600 };
    expect(l.admit("k", limits).ok).toBe(true);
    // The answer used more than the whole minute's tokens: the key is in debt.
    l.charge("k", 900);
    // 301 tokens at 10 a second to hold one.
    expect(l.admit("k", limits)).toEqual({
      ok: false,
      retryAfterS: 31,
      reason: "tpm",
      scope: "key",
      limit: limits.tpm,
    });
    c.advance(30_000);
    expect(l.admit("k", limits).ok).toBe(false);
    c.advance(100);
    expect(l.admit("k", limits).ok).toBe(true);
  });

  it("spends no request when the token limit refuses", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: 1, tpm: 60 };
    expect(l.admit("k", limits).ok).toBe(true);
    l.charge("k", 120);
    c.advance(60_000);
    // The request came back at once; the tokens are still owed (60 repaid, one more needed).
    expect(l.admit("k", limits)).toMatchObject({ ok: false, reason: "tpm", retryAfterS: 1 });
    c.advance(1_000);
    expect(l.admit("k", limits).ok).toBe(true);
  });

  it("follows a key's new limits and keeps what it owes", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    l.admit("k", { rpm: null, tpm: 1000 });
    l.charge("k", 1500);
    expect(l.admit("k", { rpm: null, tpm: 2000 })).toMatchObject({ ok: false, reason: "tpm" });
    // Raising a limit does not hand out a full new bucket to a key that was empty.
    l.admit("r", { rpm: 1, tpm: null });
    expect(l.admit("r", { rpm: 5, tpm: null }).ok).toBe(false);
  });

  it("forgets keys whose buckets are full again", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    l.admit("a", { rpm: 10, tpm: 100 });
    l.admit("b", { rpm: 10, tpm: null });
    l.charge("a", 50);
    expect(l.size).toBe(2);
    c.advance(6_000);
    l.prune();
    // b's one request refilled in 6 s; a still owes tokens.
    expect(l.size).toBe(1);
    c.advance(60_000);
    l.prune();
    expect(l.size).toBe(0);
  });

  it("publishes what keys with limits spent, and charges what they spent at another replica", () => {
    const c = clock();
    const a = new KeyLimits(c.now);
    const b = new KeyLimits(c.now);
    const limits = { rpm: 10, tpm: 1_000 };
    for (let i = 0; i < 3; i++) expect(a.admit("k", limits).ok).toBe(true);
    a.charge("k", 400);
    a.admit("free", { rpm: null, tpm: null });
    expect(a.spending()).toEqual({ k: [3, 400] });

    // B has not seen the key yet: what it owes is charged with its first request.
    b.chargeElsewhere("k", [3, 400]);
    let admitted = 0;
    while (b.admit("k", limits).ok) admitted++;
    expect(admitted).toBe(7);
    // And the other way round, on a bucket that exists: A is refused what B spent.
    a.chargeElsewhere("k", [7, 0]);
    expect(a.admit("k", limits)).toMatchObject({ ok: false, reason: "rpm" });
  });

  it("drops a key idle for five minutes from what it publishes, and forgets old debts from elsewhere", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    l.admit("k", { rpm: 5, tpm: null });
    c.advance(5 * 60_000 + 1);
    expect(l.spending()).toEqual({});
    l.chargeElsewhere("other", [5, 0]);
    c.advance(60_000);
    l.prune();
    // A minute later the debt would have refilled anyway: the key starts full.
    expect(l.admit("other", { rpm: 5, tpm: null }).ok).toBe(true);
    expect(l.spending()).toEqual({ other: [1, 0] });
  });

  it("a key busy elsewhere for an hour owes here at most a minute's worth", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: 60, tpm: null };
    for (let i = 0; i < 1_800; i++) {
      l.chargeElsewhere("k", [2, 0]);
      c.advance(2_000);
    }
    const first = l.admit("k", limits);
    expect(first).toMatchObject({ ok: false, reason: "rpm" });
    expect(first.ok === false && first.retryAfterS).toBeLessThanOrEqual(2);
  });

  it("charges an answer's tokens to a bucket pruned while it ran, and publishes them", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: null, tpm: 1_000 };
    expect(l.admit("k", limits).ok).toBe(true);
    c.advance(60_000);
    l.prune(); // full again: forgotten
    expect(l.size).toBe(0);
    l.charge("k", 5_000, limits);
    expect(l.admit("k", limits)).toMatchObject({ ok: false, reason: "tpm" });
    expect(l.spending()).toEqual({ k: [1, 5_000] });
  });

  it("holds a workspace's limits over all its keys together, and says whose limit refused", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const open = { rpm: null, tpm: null };
    const ws = { id: "ws_lab", limits: { rpm: 3, tpm: null } };
    expect([l.admit("a", open, ws).ok, l.admit("b", open, ws).ok, l.admit("a", open, ws).ok]).toEqual([
      true,
      true,
      true,
    ]);
    expect(l.admit("b", open, ws)).toMatchObject({ ok: false, scope: "workspace", reason: "rpm", limit: 3 });
    // A key's own limit that waits longer is the one named.
    const tight = { rpm: 1, tpm: null };
    expect(l.admit("c", tight).ok).toBe(true);
    expect(l.admit("c", tight, ws)).toMatchObject({ ok: false, scope: "key", limit: 1 });
    // A refused request spends nothing: after a second the workspace admits one again.
    c.advance(20_000);
    expect(l.admit("b", open, ws).ok).toBe(true);
    expect(l.spending()).toMatchObject({ "workspace:ws_lab": [4, 0], c: [1, 0] });
  });

  it("charges an answer's tokens to its key and its workspace", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const ws = { id: "ws_lab", limits: { rpm: null, tpm: 100 } };
    expect(l.admit("a", { rpm: null, tpm: null }, ws).ok).toBe(true);
    l.charge("a", 150, { rpm: null, tpm: null }, ws);
    expect(l.admit("b", { rpm: null, tpm: null }, ws)).toMatchObject({
      ok: false,
      scope: "workspace",
      reason: "tpm",
    });
  });

  it("reserves a request's tokens at admission, so requests at once see each other's, and settles to what it used", () => {
    const c = clock();
    const l = new KeyLimits(c.now);
    const limits = { rpm: null, tpm: 100 };
    const ask = { tokens: 616 + 64, concurrency: null };
    const first = l.admit("k", limits, undefined, ask);
    expect(first.ok).toBe(true);
    // Seven more at the same moment: the first one's reservation already put the key in debt.
    for (let i = 0; i < 7; i++)
      expect(l.admit("k", limits, undefined, ask)).toMatchObject({ ok: false, reason: "tpm" });
    // It used less than reserved: the rest comes back, and what it used is what peers are told.
    if (first.ok) first.reservation.settle(120);
    if (first.ok) first.reservation.settle(5_000);
    expect(l.spending()).toEqual({ k: [1, 120] });
    // 100 - 680 + 560 = -20: 21 tokens to wait for, at 100 a minute.
    c.advance(12_000);
    expect(l.admit("k", limits).ok).toBe(false);
    c.advance(1_000);
    expect(l.admit("k", limits).ok).toBe(true);
  });

  it("bounds a key's requests under way at once, and frees a place when one settles", () => {
    const l = new KeyLimits(clock().now);
    const none = { rpm: null, tpm: null };
    const ask = { tokens: 10, concurrency: 2 };
    const a = l.admit("k", none, undefined, ask);
    const b = l.admit("k", none, undefined, ask);
    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(l.admit("k", none, undefined, ask)).toEqual({
      ok: false,
      retryAfterS: 1,
      reason: "concurrency",
      scope: "key",
      limit: 2,
    });
    expect(l.admit("other", none, undefined, ask).ok).toBe(true);
    if (a.ok) a.reservation.settle(0);
    expect(l.inFlight("k")).toBe(1);
    expect(l.admit("k", none, undefined, ask).ok).toBe(true);
  });
});
