import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Cluster, type ClusterGateway, type Worker, waitFor } from "@beta9/test-utils";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  agentModels,
  ask,
  clusterSkipReason,
  deployTestModel,
  machineStatus,
  runningOn,
  startServing,
  useCluster,
  waitForRunning,
  watchStream,
} from "./fixture.ts";

/*
 * A machine drained under a long answer: the answer ends whole, new requests go elsewhere, a
 * replacement is ready before the drained machine lets its replica go, and `b9 machine show` says
 * where the drain stands. "chat" wants two replicas on three workers.
 */
const unsupported = clusterSkipReason();

const B9 = fileURLToPath(new URL("../../../cli/bin/b9.js", import.meta.url));

type Replica = { deployment: string; machine_id: string; outstanding: number };

describe.skipIf(unsupported)("a machine drained", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let client: OpenAI;
  const b9 = async (...args: string[]) =>
    (
      await promisify(execFile)(process.execPath, [B9, ...args], {
        env: { ...process.env, BETA9_GATEWAY: gw.url, BETA9_API_KEY: gw.adminKey },
      })
    ).stdout;

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

  it("lets the answer in flight finish, sends new requests elsewhere, keeps the minimum, then unloads", async () => {
    const before = await runningOn(workers, "chat");
    // A long answer streams from each replica; the first machine's is the one the drain must spare.
    const streams = [watchStream(client, "chat", 400), watchStream(client, "chat", 400)];
    await waitFor(() => streams.every((s) => s.chunks > 0), {
      what: "both streams to start",
      timeoutMs: 30_000,
    });
    const serving = (await gw.api<{ replicas: Replica[] }>("GET", "/api/v1/replicas")).body.replicas;
    expect(serving.map((r) => r.outstanding)).toEqual([1, 1]);
    const drained = workers.find((w) => w.machineId === serving[0]!.machine_id)!;
    const spare = workers.find((w) => !before.includes(w.name))!;

    // Ready replicas, the drained one included, never fall below the minimum of two.
    let fewest = Number.POSITIVE_INFINITY;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        fewest = Math.min(fewest, (await runningOn(workers, "chat")).length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const drainedAt = Date.now();
    const answer = await gw.api<{ status: string; in_flight: number; drain_waiting_for: string }>(
      "POST",
      `/api/v1/machines/${drained.machineId}/drain`,
    );
    expect(answer.body).toMatchObject({ status: "DRAINING", in_flight: 1 });
    expect(answer.body.drain_waiting_for).toMatch(/1 request in flight/);
    // Both at once: each start of the CLI takes seconds on a busy machine, and the answer goes on meanwhile.
    const [show, list] = await Promise.all([b9("machine", "show", drained.machineId), b9("machine", "list")]);
    expect(show).toMatch(/Status:\s+DRAINING \(1 in flight\)/);
    expect(show).toMatch(/Drain waits for:\s+1 request in flight/);
    expect(list).toMatch(new RegExp(`${drained.machineId}.*DRAINING \\(1 in flight\\)`));

    // New requests go to the other replicas while the long answer goes on: the drained machine's
    // requests in flight stay at that one answer while the others take them.
    const inFlight = async () =>
      (await gw.api<{ machines: { id: string; in_flight: number }[] }>("GET", "/api/v1/machines")).body
        .machines;
    let drainedMost = 0;
    let othersMost = 0;
    let asking = true;
    const sample = (async () => {
      while (asking) {
        for (const m of await inFlight()) {
          if (m.id === drained.machineId) drainedMost = Math.max(drainedMost, m.in_flight);
          else othersMost = Math.max(othersMost, m.in_flight);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const answers = await Promise.all(Array.from({ length: 4 }, () => ask(client, "chat")));
    asking = false;
    await sample;
    // Answered, each: sequences batched together on one machine may word it differently at temperature 0.
    for (const a of answers) expect(a.trim()).not.toBe("");
    expect(othersMost).toBeGreaterThanOrEqual(2);
    expect(drainedMost).toBe(1);

    // The long answer on the drained machine ends whole, not cut off.
    const ends = await Promise.all(streams.map((s) => s.done));
    for (const end of ends)
      expect(end).toMatchObject({ ok: true, finish: expect.stringMatching(/stop|length/) });

    // Then it is emptied: nothing loaded, DRAINED; the replacement runs on the third machine.
    await waitFor(async () => (await machineStatus(gw, drained.machineId)) === "DRAINED", {
      what: "DRAINED",
      timeoutMs: 60_000,
    });
    watching = false;
    await watch;
    expect(await agentModels(drained)).toEqual([]);
    expect(await runningOn(workers, "chat")).toEqual(
      [...before.filter((n) => n !== drained.name), spare.name].sort(),
    );
    expect(fewest).toBeGreaterThanOrEqual(2);
    const unloadedAt = gw.proc.logs().find((e) => e.msg === `unloaded chat: ${drained.name} is drained`)
      ?.time as number;
    const replacedAt = gw.proc
      .logs()
      .find((e) => e.msg === `chat is ready on ${spare.name}` && (e.time as number) >= drainedAt)
      ?.time as number;
    expect(replacedAt).toBeGreaterThan(drainedAt);
    // Unloaded only once the replacement was ready (and after the answer, which ended whole).
    expect(unloadedAt).toBeGreaterThanOrEqual(replacedAt);
    expect(await b9("machine", "show", drained.machineId)).toMatch(/Status:\s+DRAINED/);

    // Back in service: READY, and nothing loads twice (the minimum already runs elsewhere).
    expect(await b9("machine", "uncordon", drained.machineId)).toMatch(/status READY/);
    expect(await ask(client, "chat")).toMatch(/Paris/);
    expect(await runningOn(workers, "chat")).toHaveLength(2);
    console.info(
      `drain: replacement ready ${replacedAt - drainedAt} ms after the drain, drained ${unloadedAt - drainedAt} ms after it`,
    );
  }, 180_000);
});
