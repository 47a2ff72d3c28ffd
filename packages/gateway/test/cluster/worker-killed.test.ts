import { Cluster, type ClusterGateway, type Worker, waitFor } from "@beta9/test-utils";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  agentModels,
  ask,
  clusterSkipReason,
  deployTestModel,
  LIVENESS,
  machineStatus,
  machines,
  runningOn,
  startServing,
  useCluster,
  waitForRunning,
  watchStatus,
  watchStream,
} from "./fixture.ts";

/*
 * A worker dies: on a cluster of a gateway, three workers and a client, each its own network host.
 * "pinned" may run only in DE, where w1 is; "chat" wants two replicas anywhere.
 */
const unsupported = clusterSkipReason();

type Replica = { deployment: string; machine_id: string; machine_name: string; outstanding: number };

describe.skipIf(unsupported)("a worker dies", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let client: OpenAI;
  const byId = (id: string) => workers.find((w) => w.machineId === id)!;
  const replicas = async (deployment: string) =>
    (await gw.api<{ replicas: Replica[] }>("GET", "/api/v1/replicas")).body.replicas.filter(
      (r) => r.deployment === deployment,
    );

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create();
      ({ gw, workers, client } = await startServing(cluster, {
        workerCountry: (i) => (i === 0 ? "DE" : "FR"),
      }));
      await deployTestModel(gw, "pinned", { countries: ["DE"], min_replicas: 1 });
      // The first request places it (scale from zero); the sweeper then keeps the minimum.
      expect(await ask(client, "pinned")).toMatch(/Paris/);
      expect(await runningOn(workers, "pinned")).toEqual(["w1"]);
      await deployTestModel(gw, "chat", { min_replicas: 2, max_replicas: 2 });
      expect(await ask(client, "chat")).toMatch(/Paris/);
      await waitForRunning(workers, "chat", 2, "chat's two replicas");
    },
  );

  it("killed mid-stream: the stream ends with an error, requests not started go elsewhere, the minimum is placed again", async () => {
    // The least loaded machines took chat: w2 and w3 (w1 already runs pinned).
    expect(await runningOn(workers, "chat")).toEqual(["w2", "w3"]);

    // One long answer streams from each replica.
    const streams = [watchStream(client, "chat"), watchStream(client, "chat")];
    await waitFor(() => streams.every((s) => s.chunks > 0), {
      what: "both streams to start",
      timeoutMs: 30_000,
    });
    const serving = await replicas("chat");
    expect(serving.map((r) => r.outstanding)).toEqual([1, 1]);
    const victim = byId(serving[0]!.machine_id);
    const survivor = byId(serving[1]!.machine_id);

    // The victim hangs first, so requests can reach it and wait there without starting...
    cluster.freezeAgent(victim);
    const waiting = [ask(client, "chat"), ask(client, "chat")];
    await waitFor(
      async () => (await replicas("chat")).find((r) => r.machine_id === victim.machineId)?.outstanding === 2,
      { what: "a request to wait on the hung machine", timeoutMs: 10_000, intervalMs: 50 },
    );
    // ...then dies.
    const status = watchStatus(gw, victim.machineId);
    const killedAt = Date.now();
    cluster.killAgent(victim);

    const ends = await Promise.all(streams.map((s) => s.done));
    const lost = ends.filter((e) => !e.ok);
    expect(lost).toHaveLength(1);
    const cut = lost[0] as { ok: false; error: Error; at: number };
    expect(cut.error.message).toMatch(/the machine serving this request went away; retry it/);
    const detectionMs = cut.at - killedAt;
    expect(detectionMs).toBeLessThan(LIVENESS.unhealthyAfterMs);
    // The other stream was not disturbed.
    expect(ends.find((e) => e.ok)).toMatchObject({ ok: true, finish: expect.stringMatching(/stop|length/) });

    // The requests that had not started were answered by the other replica.
    for (const answer of await Promise.all(waiting)) expect(answer.length).toBeGreaterThan(0);
    await gw.proc.waitForLog(
      (e) => e.msg === "machine failed before answering; trying another" && e.machine_id === victim.machineId,
    );

    // The machine turns UNHEALTHY at once (its channel dropped), then OFFLINE.
    await waitFor(() => status.when("OFFLINE") !== undefined, {
      what: "OFFLINE",
      timeoutMs: LIVENESS.offlineAfterMs + 5_000,
    });
    await status.stop();
    // (READY or BUSY before: two answers were in flight.)
    expect(status.seen.map((s) => s.status).slice(1)).toEqual(["UNHEALTHY", "OFFLINE"]);
    const unhealthyMs = status.when("UNHEALTHY")! - killedAt;
    const offlineMs = status.when("OFFLINE")! - killedAt;
    expect(unhealthyMs).toBeLessThan(LIVENESS.unhealthyAfterMs);

    // chat wants two replicas: the third machine gets one, and answers.
    await waitForRunning(workers, "chat", 2, "chat placed on another machine");
    const recoveredMs = Date.now() - killedAt;
    expect(await runningOn(workers, "chat")).toEqual(["w1", survivor.name].sort());
    expect(await ask(client, "chat")).toMatch(/Paris/);
    console.info(
      `worker killed: stream error after ${detectionMs} ms, UNHEALTHY after ${unhealthyMs} ms, OFFLINE after ${offlineMs} ms, minimum replicas back after ${recoveredMs} ms`,
    );
  }, 120_000);

  it("an agent restarted comes back with its stored credential and serves its models again", async () => {
    const w1 = workers[0]!;
    const tokensBefore = (await gw.api<{ tokens: unknown[] }>("GET", "/api/v1/tokens")).body.tokens;
    const machinesBefore = (await machines(gw)).map((m) => m.id).sort();
    expect((await agentModels(w1)).map((m) => m.name).sort()).toEqual(["chat", "pinned"]);

    await cluster.stopAgent(w1);
    await waitFor(async () => (await machineStatus(gw, w1.machineId)) === "UNHEALTHY", { what: "UNHEALTHY" });
    // Only w1 is in DE: while it is away, pinned cannot be served, and the caller is told why.
    const refused = await client.chat.completions
      .create({ model: "pinned", max_tokens: 4, messages: [{ role: "user", content: "hi" }] })
      .then(
        () => undefined,
        (err: unknown) => err as { status: number; message: string },
      );
    expect(refused?.status).toBe(503);
    expect(refused?.message).toMatch(/no ready machine in pool external is in DE/);

    const restartedAt = Date.now();
    const agent = await cluster.startAgent(w1);
    // Same machine, same credential: no join, no token spent, no new machine.
    expect(agent.proc.logs().some((e) => String(e.msg).startsWith("joined the gateway"))).toBe(false);
    expect((await gw.api<{ tokens: unknown[] }>("GET", "/api/v1/tokens")).body.tokens).toEqual(tokensBefore);
    expect((await machines(gw)).map((m) => m.id).sort()).toEqual(machinesBefore);
    await gw.proc.waitForLog(
      (e) =>
        e.msg === "agent connected" && e.machine_id === w1.machineId && (e.time as number) >= restartedAt,
    );
    await waitFor(async () => (await machineStatus(gw, w1.machineId)) === "READY", { what: "READY" });

    // The gateway puts back what w1 served, and users are answered again.
    await waitForRunning([w1], "pinned", 1, "pinned back on w1");
    expect(await ask(client, "pinned")).toMatch(/Paris/);
    await waitForRunning(workers, "chat", 2, "chat at its minimum again");
    expect(await runningOn([w1], "chat")).toEqual(["w1"]);
    console.info(`agent restarted: serving pinned again ${Date.now() - restartedAt} ms after its start`);
  }, 120_000);
});
