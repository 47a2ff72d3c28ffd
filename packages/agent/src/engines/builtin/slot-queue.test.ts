import { describe, expect, it } from "vitest";
import { QueueClosedError, QueueFullError, SlotQueue } from "./slot-queue.ts";

describe("SlotQueue", () => {
  it("hands out each slot once, then queues first come first served, then refuses", async () => {
    const q = new SlotQueue(["a", "b"], 2);
    const a = await q.acquire();
    const b = await q.acquire();
    expect([a.item, b.item]).toEqual(["a", "b"]);
    const third = q.acquire();
    const fourth = q.acquire();
    await expect(q.acquire()).rejects.toBeInstanceOf(QueueFullError);
    expect({ active: q.active, waiting: q.waiting }).toEqual({ active: 2, waiting: 2 });
    b.release();
    b.release(); // a second release is a no-op, not a second slot
    expect((await third).item).toBe("b");
    a.release();
    expect((await fourth).item).toBe("a");
    expect(q.waiting).toBe(0);
  });

  it("lets a waiter whose signal aborts leave the line", async () => {
    const q = new SlotQueue([1], 5);
    const held = await q.acquire();
    const abort = new AbortController();
    const waiting = q.acquire(abort.signal);
    const next = q.acquire();
    abort.abort(new Error("client went away"));
    await expect(waiting).rejects.toThrow("client went away");
    expect(q.waiting).toBe(1);
    held.release();
    expect((await next).item).toBe(1);
  });

  it("on close refuses waiters and newcomers, and takes released slots out of service", async () => {
    const q = new SlotQueue(["x"], 5);
    const held = await q.acquire();
    const waiting = q.acquire();
    q.close("the model is being unloaded");
    await expect(waiting).rejects.toBeInstanceOf(QueueClosedError);
    await expect(q.acquire()).rejects.toThrow("the model is being unloaded");
    held.release();
    expect(q.active).toBe(0);
  });
});
