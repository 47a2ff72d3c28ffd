import type { StoredModelView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { PullTracker } from "./pull-tracker.ts";
import type { ModelPuller } from "./puller.ts";

/*
 * The tracker around the model store's pull. The puller here is a stand-in that reports progress
 * when told to, so a pull can be watched half-way; the real store's pulls are covered end to end.
 */

function steppedPuller() {
  let step: (p: { status: string; completed?: number; total?: number }) => void = () => {};
  let finish: (err?: Error) => void = () => {};
  const puller: ModelPuller = {
    pull: (name, _source, opts) =>
      new Promise<StoredModelView>((resolve, reject) => {
        step = opts.onProgress;
        finish = (err) => (err ? reject(err) : resolve({ name } as StoredModelView));
      }),
    checkOwner: async () => {},
  };
  return { puller, step: (p: Parameters<typeof step>[0]) => step(p), finish: (err?: Error) => finish(err) };
}

describe("pull tracker (stand-in puller)", () => {
  it("shows each pull under way with its latest progress, passes progress on to the caller, and forgets it when done or failed", async () => {
    const tracker = new PullTracker();
    let changes = 0;
    tracker.on("change", () => changes++);
    const a = steppedPuller();
    const b = steppedPuller();
    const seenByCaller: number[] = [];
    const pa = tracker.track(a.puller).pull("llama3.2", undefined, {
      signal: new AbortController().signal,
      onProgress: (p) => seenByCaller.push(p.completed ?? -1),
    });
    const pb = tracker
      .track(b.puller)
      .pull("qwen", "hf:qwen/x", { signal: new AbortController().signal, onProgress: () => {} });

    a.step({ status: "downloading", completed: 50, total: 200 });
    expect(tracker.active()).toEqual([
      expect.objectContaining({ model: "llama3.2", status: "downloading", completed: 50, total: 200 }),
      expect.objectContaining({ model: "qwen", status: "starting" }),
    ]);
    expect(seenByCaller).toEqual([50]);

    b.finish(new Error("404 from the hub"));
    await expect(pb).rejects.toThrow("404 from the hub");
    expect(tracker.active().map((p) => p.model)).toEqual(["llama3.2"]);

    a.finish();
    await expect(pa).resolves.toMatchObject({ name: "llama3.2" });
    expect(tracker.active()).toEqual([]);
    expect(changes).toBeGreaterThanOrEqual(5);
  });
});
