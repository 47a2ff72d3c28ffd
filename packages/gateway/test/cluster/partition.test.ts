import { Cluster, type ClusterGateway, type Worker, waitFor } from "@beta9/test-utils";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  ask,
  clusterSkipReason,
  deployTestModel,
  LIVENESS,
  runningOn,
  startServing,
  useCluster,
  waitForRunning,
  watchStatus,
  watchStream,
} from "./fixture.ts";

/*
 * A worker cut off from the network, then healed: it keeps running all along, so when it returns it
 * still runs what it ran before. The gateway must square that with what it wants now.
 */
const unsupported = clusterSkipReason();

describe.skipIf(unsupported)("a worker cut off, then healed", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let client: OpenAI;

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create();
      ({ gw, workers, client } = await startServing(cluster));
      // Both deployments land on w1: the others are cordoned while they are placed.
      for (const w of workers.slice(1))
        expect((await gw.api("POST", `/api/v1/machines/${w.machineId}/cordon`)).status).toBe(200);
      // chat keeps one replica (moved while w1 is away); old is loaded on demand only, so nothing
      // places it elsewhere meanwhile (a replacement could be ready before old is removed below).
      for (const [name, min] of [
        ["chat", 1],
        ["old", 0],
      ] as const) {
        await deployTestModel(gw, name, { min_replicas: min, max_replicas: 1 });
        expect(await ask(client, name)).toMatch(/Paris/);
      }
      for (const w of workers.slice(1))
        expect((await gw.api("POST", `/api/v1/machines/${w.machineId}/uncordon`)).status).toBe(200);
    },
  );

  it("fails its stream over, moves its replica; healed, it runs nothing twice and drops what was removed", async () => {
    const [w1] = workers as [Worker, ...Worker[]];
    expect(await runningOn(workers, "chat")).toEqual(["w1"]);
    expect(await runningOn(workers, "old")).toEqual(["w1"]);

    const stream = watchStream(client, "chat");
    await waitFor(() => stream.chunks > 0, { what: "the stream to start", timeoutMs: 30_000 });
    const status = watchStatus(gw, w1.machineId);
    const cutAt = Date.now();
    cluster.cut(w1.host);

    // Nothing tells anyone: the gateway notices the silence, and the stream ends with an error.
    const end = await stream.done;
    expect(end.ok).toBe(false);
    const error = end as { ok: false; error: Error; at: number };
    expect(error.error.message).toMatch(/went away; retry it/);
    const streamEndedMs = error.at - cutAt;
    expect(streamEndedMs).toBeLessThan(LIVENESS.unhealthyAfterMs + 5_000);
    expect(status.when("UNHEALTHY")).toBeDefined();

    // chat wants one replica: another machine gets it and answers while w1 is away.
    await waitForRunning(workers.slice(1), "chat", 1, "chat placed on another machine");
    const movedMs = Date.now() - cutAt;
    expect(await ask(client, "chat")).toMatch(/Paris/);
    // old is removed while w1 cannot hear it; w1 still runs both.
    expect((await gw.api("DELETE", "/api/v1/deployments/old")).status).toBe(204);
    expect(await runningOn([w1], "chat")).toEqual(["w1"]);
    expect(await runningOn([w1], "old")).toEqual(["w1"]);

    const healedAt = Date.now();
    cluster.heal(w1.host);
    await waitFor(() => status.seen.at(-1)?.status === "READY", {
      what: "w1 READY again",
      timeoutMs: 60_000,
    });
    const backMs = Date.now() - healedAt;
    // What the machines run converges on what is wanted: chat once, old nowhere.
    await waitFor(
      async () =>
        (await runningOn(workers, "chat")).length === 1 && (await runningOn(workers, "old")).length === 0,
      { what: "chat to run once and old nowhere", timeoutMs: 30_000, intervalMs: 250 },
    );
    const reconciledMs = Date.now() - healedAt;
    await status.stop();
    expect(status.seen.map((s) => s.status)).toContain("UNHEALTHY");
    expect(await ask(client, "chat")).toMatch(/Paris/);
    // The replica that served while w1 was away stays; w1 was told to drop its own, and did.
    expect(await runningOn([w1], "chat")).toEqual([]);
    // The gateway logs an unload when the agent's stop has answered: the agent's own list may show it
    // gone a moment before.
    const unloaded = () =>
      gw.proc.logs().filter((e) => String(e.msg).startsWith("unloaded") && e.machine_id === w1.machineId);
    await waitFor(() => unloaded().length >= 2, {
      what: "the gateway to log both unloads",
      timeoutMs: 10_000,
    });
    expect(
      unloaded()
        .map((e) => e.msg)
        .sort(),
    ).toEqual([
      "unloaded chat: 2 replicas run and max_replicas is 1",
      "unloaded old: its deployment was removed",
    ]);
    console.info(
      `worker cut off: stream error after ${streamEndedMs} ms, UNHEALTHY after ${status.when("UNHEALTHY")! - cutAt} ms, replica moved after ${movedMs} ms; healed: READY after ${backMs} ms, reconciled after ${reconciledMs} ms`,
    );
  }, 180_000);
});
