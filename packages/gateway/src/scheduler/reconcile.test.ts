import { describe, expect, it } from "vitest";
import { unwantedReplicas } from "./reconcile.ts";

describe("unwantedReplicas", () => {
  const serving = (runs: Record<string, string[]>) => (model: string) =>
    (runs[model] ?? []).map((id) => ({ id }));

  it("wants nothing gone while every deployment is within its maximum", () => {
    expect(
      unwantedReplicas({
        deployments: [{ name: "chat", maxReplicas: 2 }],
        removed: [],
        serving: serving({ chat: ["a", "b"] }),
        lastUsed: () => 1,
      }),
    ).toEqual([]);
  });

  it("unloads the least recently used replicas beyond max_replicas (a machine back from a partition)", () => {
    const used: Record<string, number> = { a: 300, b: 100, c: 200 };
    expect(
      unwantedReplicas({
        deployments: [{ name: "chat", maxReplicas: 1 }],
        removed: [],
        serving: serving({ chat: ["a", "b", "c"] }),
        lastUsed: (id) => used[id],
      }),
    ).toEqual([
      { machineId: "b", model: "chat", why: "3 replicas run and max_replicas is 1" },
      { machineId: "c", model: "chat", why: "3 replicas run and max_replicas is 1" },
    ]);
  });

  it("counts a replica never used by this gateway as the least recently used", () => {
    const out = unwantedReplicas({
      deployments: [{ name: "chat", maxReplicas: 1 }],
      removed: [],
      serving: serving({ chat: ["a", "b"] }),
      lastUsed: (id) => (id === "a" ? 5 : undefined),
    });
    expect(out.map((u) => u.machineId)).toEqual(["b"]);
  });

  it("unloads a removed deployment's model wherever it still runs", () => {
    expect(
      unwantedReplicas({
        deployments: [],
        removed: ["old"],
        serving: serving({ old: ["a"], other: ["b"] }),
        lastUsed: () => undefined,
      }),
    ).toEqual([{ machineId: "a", model: "old", why: "its deployment was removed" }]);
  });
});
