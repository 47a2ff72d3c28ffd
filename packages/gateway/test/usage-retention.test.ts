import { createLogger } from "@beta9/http";
import { Store, storeConfigFrom } from "@beta9/store";
import { DIALECTS, startGateway } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { UsageRetention } from "../src/metering/usage-retention.ts";

/*
 * Usage rows past `--usage-retention` are removed: when the gateway starts and hourly after. The
 * gateway test runs the real binary on a store seeded with rows of several ages.
 */
const DAY = 86_400_000;
const log = createLogger({ name: "test", level: "silent", pretty: false });

function row(id: string, workspaceId: string, keyId: string, startedAt: number) {
  return {
    id,
    key_id: keyId,
    workspace_id: workspaceId,
    model: "m",
    machine_id: "m1",
    status: 200,
    prompt_tokens: 10,
    completion_tokens: 5,
    latency_ms: 100,
    ttfb_ms: 20,
    started_at: startedAt,
  };
}

interface Day {
  group: string;
  requests: number;
}

describe("usage retention", () => {
  it("a gateway started with --usage-retention 30d removes older rows and keeps the rest", async () => {
    // First start: the workspace and admin key exist; then rows of several ages go into its store.
    const first = await startGateway();
    await first.proc.stop();
    const store = await Store.open(storeConfigFrom({ dataDir: first.dataDir }));
    const ws = (await store.workspaces.byName("default"))!;
    const key = (await store.keys.list({ workspaceId: ws.id }))[0]!;
    const now = Date.now();
    await store.usage.insertMany([
      row("u_400d", ws.id, key.id, now - 400 * DAY),
      row("u_31d", ws.id, key.id, now - 31 * DAY),
      row("u_29d", ws.id, key.id, now - 29 * DAY),
      row("u_1h", ws.id, key.id, now - 3_600_000),
    ]);
    await store.close();

    const gw = await startGateway({ dataDir: first.dataDir, args: ["--usage-retention", "30d"] });
    try {
      await gw.proc.waitForLog((e) => e.msg === "usage rows past the retention removed" && e.removed === 2);
      const since = new Date(now - 500 * DAY).toISOString();
      const res = await gw.api<{ groups: Day[] }>("GET", `/api/v1/usage?since=${since}&group_by=day`);
      expect(res.status).toBe(200);
      expect(res.body.groups.reduce((n, g) => n + g.requests, 0)).toBe(2);
    } finally {
      await gw.proc.stop();
    }
  });

  for (const dialect of DIALECTS) {
    it(`on ${dialect.name}: removes every workspace's rows past the window, and nothing with 0`, async () => {
      const store = await Store.open(dialect.config());
      try {
        const now = Date.now();
        for (const id of ["ws_a", "ws_b"]) await store.workspaces.insert({ id, name: id, created_at: now });
        await store.usage.insertMany([
          row("a_old", "ws_a", "k", now - 10 * DAY),
          row("b_old", "ws_b", "k", now - 8 * DAY),
          row("a_new", "ws_a", "k", now - 6 * DAY),
          // More than one delete's batch: removed in several, all of them.
          ...Array.from({ length: 4_500 }, (_, i) => row(`bulk_${i}`, "ws_b", "k", now - 9 * DAY - i)),
        ]);
        const count = async (workspaceId: string) =>
          (await store.usage.summarize({ workspaceId, since: 0, until: now + 1, groupBy: "model" })).reduce(
            (n, g) => n + g.requests,
            0,
          );

        await new UsageRetention(store.usage, log, 0).prune(now);
        expect([await count("ws_a"), await count("ws_b")]).toEqual([2, 4_501]);
        await new UsageRetention(store.usage, log, 7 * DAY).prune(now);
        expect([await count("ws_a"), await count("ws_b")]).toEqual([1, 0]);
      } finally {
        await store.close();
      }
    });
  }
});
