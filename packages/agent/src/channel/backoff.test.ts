import { describe, expect, it } from "vitest";
import { Backoff, sleep } from "./backoff.ts";

describe("Backoff", () => {
  it("grows, caps, and starts over on reset", () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1_000, random: () => 1 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it("spreads agents that lost the gateway together over half of each delay", () => {
    const delays = Array.from({ length: 1000 }, () => {
      const b = new Backoff({ baseMs: 1_000, maxMs: 30_000 });
      b.next();
      b.next();
      return b.next(); // third attempt: ceiling 4 s
    });
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4_000);
    const buckets = new Set(delays.map((d) => Math.floor(d / 200)));
    expect(buckets.size).toBeGreaterThanOrEqual(9); // not all at once
  });

  it("sleep ends early when cancelled", async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
