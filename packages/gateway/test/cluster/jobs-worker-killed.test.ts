import { Cluster, type ClusterGateway, type Worker, waitFor } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { clusterSkipReason, LIVENESS, startServing, useCluster } from "./fixture.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * The agent running a job dies, on a cluster of a gateway and two workers, each its own network host:
 * the gateway marks the run LOST once the machine is OFFLINE, and the job, which allows a retry, runs
 * again on the other machine. (The agents run jobs with the native runner: sandboxes are the agent's
 * own tests; here the subject is the gateway's handling of a lost machine.)
 */
const unsupported = clusterSkipReason();
process.env.B9AGENT_JOB_RUNNER = "native";

describe.skipIf(unsupported)("the machine running a job dies", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let key: string;
  const show = async (id: string): Promise<Json> =>
    (await gw.api<Json>("GET", `/api/v1/jobs/${id}`, undefined, key)).body;

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create({ workers: 2 });
      ({ gw, workers } = await startServing(cluster));
      key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
        .key;
    },
  );

  it("LOST when its machine goes offline, then retried on the other machine", async () => {
    const made = await gw.api<Json>(
      "POST",
      "/api/v1/jobs",
      { command: ["sh", "-c", "echo attempt started; exec sleep 300"], retries: 1 },
      key,
    );
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    let job: Json;
    await waitFor(
      async () => {
        job = await show(id);
        return job.state === "RUNNING";
      },
      { what: "the job to run", timeoutMs: 30_000 },
    );
    const victim = workers.find((w) => w.machineId === job.machine_id)!;
    const other = workers.find((w) => w !== victim)!;
    const killedAt = Date.now();
    cluster.killAgent(victim);

    await waitFor(
      async () => {
        job = await show(id);
        return job.state === "RUNNING" && job.attempt === 2;
      },
      { what: "the job to run again", timeoutMs: LIVENESS.offlineAfterMs + 30_000 },
    );
    expect(job.machine_id).toBe(other.machineId);
    const states = job.events.map((e: Json) => e.state);
    expect(states.filter((s: string) => s !== "PREPARING")).toEqual([
      "QUEUED",
      "ASSIGNED",
      "RUNNING",
      "LOST",
      "QUEUED",
      "ASSIGNED",
      "RUNNING",
    ]);
    const lost = job.events.find((e: Json) => e.state === "LOST");
    expect(lost).toMatchObject({
      machine_id: victim.machineId,
      reason: expect.stringMatching(/went offline/),
    });
    // Both attempts' lines are in its log, each with its attempt.
    const logs = await fetch(`${gw.url}/api/v1/jobs/${id}/logs`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const lines = (await logs.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.attempt, l.line])).toEqual([
      [1, "attempt started"],
      [2, "attempt started"],
    ]);
    console.info(
      `job lost and running again on the other machine ${Date.now() - killedAt} ms after its agent died`,
    );

    const cancelled = await gw.api<Json>("POST", `/api/v1/jobs/${id}/cancel`, undefined, key);
    expect(cancelled.body.state).toBe("CANCELLED");
  }, 120_000);
});
