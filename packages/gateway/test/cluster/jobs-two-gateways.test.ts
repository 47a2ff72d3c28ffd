import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GATEWAY_PORT } from "@beta9/protocol";
import { Cluster, type ClusterGateway, tempDir, type Worker, waitFor } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { clusterSkipReason, GATEWAY_ARGS, useCluster } from "./fixture.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * Jobs with two gateway replicas, A and B, on one PostgreSQL, each its own network host; the agent
 * holds its channel to A. A job submitted at B is run by A (the replica holding the machine's
 * channel) and read at B; when A dies mid-run, the agent moves to B, which re-attaches to the run.
 */
const unsupported = clusterSkipReason();
process.env.B9AGENT_JOB_RUNNER = "native";

describe.skipIf(unsupported)("jobs with two gateway replicas", () => {
  let cluster: Cluster;
  let a: ClusterGateway;
  let b: ClusterGateway;
  let worker: Worker;
  let key: string;
  const addressOf = (gw: ClusterGateway) => `${gw.host.address}:${GATEWAY_PORT}`;
  const show = async (id: string): Promise<Json> =>
    (await b.api<Json>("GET", `/api/v1/jobs/${id}`, undefined, key)).body;
  const logsAtB = async (id: string, follow = false) =>
    (
      await (
        await fetch(`${b.url}/api/v1/jobs/${id}/logs${follow ? "?follow=true" : ""}`, {
          headers: { authorization: `Bearer ${key}` },
        })
      ).text()
    )
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l).line as string);
  const until = async (id: string, states: string[]): Promise<Json> => {
    let job: Json;
    await waitFor(
      async () => {
        job = await show(id);
        return states.includes(job.state);
      },
      { what: `job ${id} ${states.join(" or ")}`, timeoutMs: 60_000 },
    );
    return job;
  };

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create({ workers: 1, gateways: 2 });
      const databaseUrl = await cluster.database();
      a = await cluster.startGateway({ args: GATEWAY_ARGS, databaseUrl });
      // B shares A's data dir only to read the admin key the first start wrote there.
      b = await cluster.startGateway({
        host: cluster.gatewayHosts[1]!,
        dataDir: a.dataDir,
        args: GATEWAY_ARGS,
        databaseUrl,
      });
      worker = await cluster.joinWorker(a, cluster.workerHosts[0]!, { args: ["--gateway", addressOf(b)] });
      key = (await b.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body.key;
      // B has read A's row: it knows A holds the machine (within its peer interval of a couple of seconds).
      await waitFor(
        async () =>
          (await b.api<Json>("GET", `/api/v1/machines/${worker.machineId}`)).body.status === "READY",
        { what: "B to see the machine held by A" },
      );
    },
  );

  it("a job submitted at B runs on A's machine, assigned and followed by A, its logs read at B", async () => {
    const made = await b.api<Json>(
      "POST",
      "/api/v1/jobs",
      { command: ["echo", "hello from A's machine"] },
      key,
    );
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    // Followed at B, which does not follow the run itself: it reads what A keeps in the store.
    expect(await logsAtB(id, true)).toEqual(["hello from A's machine"]);
    expect(await until(id, ["SUCCEEDED"])).toMatchObject({ machine_id: worker.machineId, exit_code: 0 });
    expect(a.proc.logs().some((e) => e.job_id === id && String(e.msg).includes("assigned"))).toBe(true);
    expect(b.proc.logs().some((e) => e.job_id === id && String(e.msg).includes("assigned"))).toBe(false);
  }, 60_000);

  it("a job that fits no machine now says why as the replica holding the machines sees it", async () => {
    const machine = (await a.api<Json>("GET", `/api/v1/machines/${worker.machineId}`)).body;
    // All its memory: it could run there empty, never beside what the machine uses now.
    const spec = { command: ["true"], resources: { memory_bytes: machine.hardware.memory_total_bytes } };
    const id = (await b.api<Json>("POST", "/api/v1/jobs", spec, key)).body.id as string;
    await waitFor(async () => (await show(id)).reason !== null, { what: "the job's wait reason" });
    // B, which holds no machine, never overwrites A's reason with its own "no machine" one.
    const reasons = new Set<string>();
    for (let i = 0; i < 20; i++) {
      reasons.add((await show(id)).reason);
      await new Promise((r) => setTimeout(r, 100));
    }
    // (Its numbers follow the machine's free memory as it changes.)
    for (const reason of reasons) expect(reason).toMatch(/free memory; most free is .* on w1/);
    await b.api("POST", `/api/v1/jobs/${id}/cancel`, undefined, key);
  }, 60_000);

  it("A dies mid-run: the agent moves to B, which re-attaches to the run and keeps its end", async () => {
    const gate = join(tempDir("b9-job-gate-"), "go");
    const script = `echo before; while [ ! -e ${gate} ]; do sleep 0.1; done; echo after`;
    const id = (await b.api<Json>("POST", "/api/v1/jobs", { command: ["sh", "-c", script] }, key)).body.id;
    await waitFor(async () => (await logsAtB(id)).includes("before"), { what: "the job to start" });
    await a.proc.stop("SIGKILL");
    await worker.agent!.proc.waitForLog(
      (e) => e.msg === "connected to gateway" && e.gateway === `http://${addressOf(b)}`,
      60_000,
    );
    writeFileSync(gate, "");
    const job = await until(id, ["SUCCEEDED", "FAILED", "LOST"]);
    expect(job).toMatchObject({ state: "SUCCEEDED", attempt: 1, machine_id: worker.machineId });
    expect(await logsAtB(id)).toEqual(["before", "after"]);
    expect(b.proc.logs().some((e) => e.job_id === id && e.state === "SUCCEEDED")).toBe(true);
  }, 90_000);
});
