import { Cluster, type ClusterGateway, SteadyLoad, type Worker, waitFor } from "@beta9/test-utils";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  ask,
  clusterSkipReason,
  deployTestModel,
  machineStatus,
  runningOn,
  startServing,
  useCluster,
  waitForRunning,
} from "./fixture.ts";

/*
 * Agents upgraded one by one under a steady load: each machine drained, its agent stopped and started
 * again with its stored credential, and returned to service, while four clients keep asking. "chat"
 * wants two replicas, so one always serves; no request may fail, hang or be answered twice.
 */
const unsupported = clusterSkipReason();

describe.skipIf(unsupported)("a rolling upgrade under load", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let client: OpenAI;

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create();
      ({ gw, workers, client } = await startServing(cluster));
      await deployTestModel(gw, "chat", { min_replicas: 2, max_replicas: 2 });
      expect(await ask(client, "chat")).toMatch(/Paris/);
      await waitForRunning(workers, "chat", 2, "chat's two replicas");
    },
  );

  it("drains, restarts and returns each agent in turn with zero failed requests", async () => {
    const tokensBefore = (await gw.api("GET", "/api/v1/tokens")).body;
    const load = new SteadyLoad(client, "chat", { clients: 4, deadlineMs: 60_000 });
    load.start();
    await waitFor(() => load.summary().succeeded >= 8, { what: "the load to get going", timeoutMs: 30_000 });

    for (const w of workers) {
      const runs = w.runs.length;
      expect((await gw.api("POST", `/api/v1/machines/${w.machineId}/drain`)).status).toBe(200);
      await waitFor(async () => (await machineStatus(gw, w.machineId)) === "DRAINED", {
        what: `${w.name} DRAINED`,
        timeoutMs: 90_000,
      });
      // The upgrade: the agent stops cleanly and a new one starts on the same config and credential.
      await cluster.stopAgent(w);
      const agent = await cluster.startAgent(w);
      expect(w.runs).toHaveLength(runs + 1);
      expect(agent.proc.logs().some((e) => String(e.msg).startsWith("joined the gateway"))).toBe(false);
      await waitFor(async () => (await machineStatus(gw, w.machineId)) === "DRAINED", {
        what: `${w.name} back, still drained`,
        timeoutMs: 30_000,
      });
      expect((await gw.api("POST", `/api/v1/machines/${w.machineId}/uncordon`)).status).toBe(200);
      await waitFor(async () => (await machineStatus(gw, w.machineId)) === "READY", {
        what: `${w.name} READY`,
        timeoutMs: 30_000,
      });
      // Requests go on being answered between upgrades, not only before the first.
      const sent = load.summary().succeeded;
      await waitFor(() => load.summary().succeeded >= sent + 4, { what: "answers after the upgrade" });
    }

    await load.stop();
    const summary = load.summary();
    console.info(`rolling upgrade under load: ${JSON.stringify(summary)}`);
    expect(summary.failed, JSON.stringify(summary.errors)).toBe(0);
    expect(summary.hung).toBe(0);
    expect(summary.answeredTwice).toBe(0);
    expect(summary.succeeded).toBe(summary.sent);
    expect(summary.sent).toBeGreaterThanOrEqual(20);
    // Every agent was replaced by a new process; no join token was spent; the minimum still runs.
    for (const w of workers) expect(w.runs).toHaveLength(2);
    expect((await gw.api("GET", "/api/v1/tokens")).body).toEqual(tokensBefore);
    expect(await runningOn(workers, "chat")).toHaveLength(2);
  }, 400_000);
});
