import { createLogger } from "@beta9/http";
import type { NewUsageRow as UsageRow } from "@beta9/store";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { UsageRecorder } from "./usage-recorder.ts";

const log = createLogger({ name: "test", level: "silent", pretty: false });

function row(i: number): UsageRow {
  return {
    id: `u${i}`,
    key_id: "k",
    workspace_id: "w",
    model: "m",
    machine_id: null,
    status: 200,
    prompt_tokens: 1,
    completion_tokens: 1,
    latency_ms: 1,
    ttfb_ms: null,
    started_at: i,
  };
}

/** A sink that records each batch and can be made to fail or to wait. */
function sink() {
  const batches: string[][] = [];
  let failing = false;
  let gate: Promise<void> | undefined;
  return {
    batches,
    fail: (on: boolean) => {
      failing = on;
    },
    hold: (p: Promise<void> | undefined) => {
      gate = p;
    },
    async insertMany(rows: readonly UsageRow[]) {
      if (gate) await gate;
      if (failing) throw new Error("store down");
      batches.push(rows.map((r) => r.id));
    },
  };
}

describe("UsageRecorder", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("writes nothing per request: a batch each second, or at once when 100 are pending", async () => {
    const s = sink();
    const r = new UsageRecorder(s, log);
    for (let i = 0; i < 3; i++) r.record(row(i));
    await vi.advanceTimersByTimeAsync(999);
    expect(s.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.batches).toEqual([["u0", "u1", "u2"]]);
    for (let i = 3; i < 103; i++) r.record(row(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.batches).toHaveLength(2);
    expect(s.batches[1]).toHaveLength(100);
    await r.close();
  });

  it("takes rows that come during a write in the next batch, and flush() waits for its rows", async () => {
    const s = sink();
    const r = new UsageRecorder(s, log, { batchSize: 2 });
    let open!: () => void;
    s.hold(new Promise<void>((resolve) => (open = resolve)));
    r.record(row(0));
    r.record(row(1)); // starts a write, held
    await vi.advanceTimersByTimeAsync(0);
    r.record(row(2));
    r.record(row(3));
    const flushed = r.flush();
    s.hold(undefined);
    open();
    await flushed;
    expect(s.batches).toEqual([
      ["u0", "u1"],
      ["u2", "u3"],
    ]);
    expect(r.pending).toBe(0);
    await r.close();
  });

  it("keeps rows when the store fails and writes them, in order, when it is back", async () => {
    const s = sink();
    const r = new UsageRecorder(s, log);
    s.fail(true);
    r.record(row(0));
    await r.flush();
    r.record(row(1));
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.pending).toBe(2);
    s.fail(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.batches).toEqual([["u0", "u1"]]);
    await r.close();
  });

  it("drops the oldest rows beyond maxPending rather than grow without bound", async () => {
    const s = sink();
    const r = new UsageRecorder(s, log, { maxPending: 3, batchSize: 1000 });
    s.fail(true);
    for (let i = 0; i < 5; i++) r.record(row(i));
    expect(r.pending).toBe(3);
    s.fail(false);
    await r.flush();
    expect(s.batches).toEqual([["u2", "u3", "u4"]]);
    await r.close();
  });

  it("writes what is left on close and stops its timer", async () => {
    const s = sink();
    const r = new UsageRecorder(s, log);
    r.record(row(0));
    await r.close();
    expect(s.batches).toEqual([["u0"]]);
    expect(vi.getTimerCount()).toBe(0);
  });

  describe("on the request path", () => {
    beforeEach(() => {
      vi.useRealTimers();
    });

    it("writes the rows of requests that finish in one turn of the event loop in one INSERT", async () => {
      const s = sink();
      const r = new UsageRecorder(s, log);
      // Each request finishes in its own callback, as answers' ends come in from their sockets.
      await Promise.all(
        Array.from(
          { length: 10 },
          (_, i) =>
            new Promise<void>((resolve) =>
              // Immediates queued together run in one pass (timers may straddle a millisecond).
              setImmediate(() => {
                r.record(row(i));
                void r.flushSoon().then(resolve);
              }),
            ),
        ),
      );
      expect(s.batches).toEqual([Array.from({ length: 10 }, (_, i) => `u${i}`)]);
      r.record(row(10));
      await r.flushSoon();
      expect(s.batches.at(-1)).toEqual(["u10"]);
      await r.close();
    });
  });
});
