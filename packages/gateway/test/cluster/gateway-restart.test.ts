import { Cluster, type ClusterGateway, type Worker, waitFor } from "@beta9/test-utils";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  ask,
  clusterSkipReason,
  deployTestModel,
  machines,
  runningOn,
  startServing,
  useCluster,
} from "./fixture.ts";

/*
 * The gateway restarted under three working agents: they come back by themselves, spread out in time,
 * and nothing users made is lost. On SQLite (the data dir) and on PostgreSQL.
 */
const unsupported = clusterSkipReason();

for (const store of ["sqlite", "postgres"] as const) {
  describe.skipIf(unsupported)(`the gateway restarted (${store})`, () => {
    let cluster: Cluster;
    let gw: ClusterGateway;
    let workers: Worker[];
    let client: OpenAI;

    useCluster(
      () => cluster,
      async () => {
        cluster = Cluster.create();
        const databaseUrl = store === "postgres" ? await cluster.database() : undefined;
        ({ gw, workers, client } = await startServing(cluster, {
          gateway: databaseUrl ? { databaseUrl } : {},
        }));
        await deployTestModel(gw, "chat", { min_replicas: 1 });
        expect(await ask(client, "chat")).toMatch(/Paris/);
      },
    );

    it("agents reconnect with backoff and jitter; deployments, keys, tokens and usage survive", async () => {
      expect(gw.proc.logs().find((e) => typeof e.store === "string")?.store).toBe(store);
      const token = (await gw.api<{ id: string }>("POST", "/api/v1/tokens", { uses: 5 })).body;
      const read = async () => ({
        deployments: (await gw.api("GET", "/api/v1/deployments")).body,
        // (last_used_at moves: these very reads use the admin key.)
        keys: (await gw.api<{ keys: { last_used_at?: string }[] }>("GET", "/api/v1/keys")).body.keys.map(
          ({ last_used_at: _, ...k }) => k,
        ),
        tokens: (await gw.api("GET", "/api/v1/tokens")).body,
        usage: (await gw.api<{ groups: unknown[] }>("GET", "/api/v1/usage")).body.groups,
        machines: (await machines(gw)).map((m) => m.id).sort(),
      });
      const before = await read();
      expect(before.usage).toEqual([expect.objectContaining({ group: "chat", requests: 1 })]);
      const servedBy = await runningOn(workers, "chat");

      const stoppedAt = Date.now();
      const failedTries = (w: Worker) =>
        w
          .agent!.proc.logs()
          .filter((e) => (e.time as number) >= stoppedAt && e.msg === "cannot reach the gateway; will retry")
          .length;
      gw = await cluster.restartGateway(gw, {
        // Down long enough for each agent to try a few times: the waits between tries must grow.
        // Three tries take ~4 s on a quiet machine; a loaded one may stretch the first dial or the gateway's
        // exit, so the wait is long and, if it runs out, says what each agent did meanwhile.
        whileDown: () =>
          waitFor(() => workers.every((w) => failedTries(w) >= 3), {
            what: "every agent to try three times",
            timeoutMs: 60_000,
          }).catch((err: Error) => {
            const since = workers.map(
              (w) =>
                `${w.name} (${failedTries(w)} tries):\n${w
                  .agent!.proc.logs()
                  .filter((e) => (e.time as number) >= stoppedAt - 1_000)
                  .slice(-12)
                  .map((e) => `  ${new Date(e.time as number).toISOString()} ${e.msg} ${e.err ?? ""}`)
                  .join("\n")}`,
            );
            throw new Error(
              `${err.message}; stopped at ${new Date(stoppedAt).toISOString()}\n${since.join("\n")}`,
            );
          }),
      });
      await waitFor(async () => (await machines(gw)).every((m) => m.status === "READY"), {
        what: "every machine READY again",
        timeoutMs: 30_000,
      });

      // Each agent came back by itself, dialling again and again with growing waits, at its own times.
      const reconnects = workers.map((w) => {
        const after = w.agent!.proc.logs().filter((e) => (e.time as number) >= stoppedAt);
        expect(after.some((e) => e.msg === "lost the gateway; reconnecting")).toBe(true);
        const tries = after
          .filter((e) => e.msg === "cannot reach the gateway; will retry")
          .map((e) => e.time as number);
        const connected = after.find((e) => e.msg === "connected to gateway")?.time as number;
        expect(connected).toBeGreaterThan(stoppedAt);
        return { tries, connected };
      });
      expect(workers.every((w) => w.agent!.proc.child.exitCode === null)).toBe(true);
      const times = reconnects.map((r) => r.connected);
      const spreadMs = Math.max(...times) - Math.min(...times);
      // No stampede: three agents that lost the gateway at the same instant do not return at one.
      expect(spreadMs).toBeGreaterThanOrEqual(20);
      const gaps = reconnects.map(({ tries, connected }) =>
        [...tries, connected].slice(1).map((t, i) => t - tries[i]!),
      );
      for (const g of gaps) {
        expect(g.length).toBeGreaterThanOrEqual(3);
        // Backoff: each wait at least as long as the one before (half of it fixed and doubling).
        for (let i = 1; i < g.length; i++) expect(g[i]!).toBeGreaterThanOrEqual(g[i - 1]! - 100);
      }
      // Jitter: the agents' waits differ (half of each is random).
      for (let i = 0; i < 2; i++) expect(new Set(gaps.map((g) => g[i])).size).toBeGreaterThan(1);

      // Everything users made is still there, and the key still works.
      const after = await read();
      expect(after).toEqual(before);
      expect(after.tokens).toMatchObject({
        tokens: expect.arrayContaining([expect.objectContaining({ id: token.id, uses_left: 5 })]),
      });
      expect(await ask(client, "chat")).toMatch(/Paris/);
      // Served by the replica that ran all along: nothing was loaded again.
      expect(await runningOn(workers, "chat")).toEqual(servedBy);
      expect(gw.proc.logs().some((e) => String(e.msg).startsWith("loading chat"))).toBe(false);
      const usage = (await gw.api<{ groups: unknown[] }>("GET", "/api/v1/usage")).body.groups;
      expect(usage).toEqual([expect.objectContaining({ group: "chat", requests: 2 })]);
      console.info(
        `gateway restarted (${store}): agents back after ${times
          .map((t) => t - stoppedAt)
          .sort((a, b) => a - b)
          .join(
            ", ",
          )} ms (spread ${spreadMs} ms), waits between tries ${gaps.map((g) => g.join("/")).join(", ")} ms`,
      );
    }, 180_000);
  });
}
