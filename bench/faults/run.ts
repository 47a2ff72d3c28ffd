/**
 * Faults under a steady load, on a cluster of network namespaces (a gateway, three workers, a client):
 * four clients loop short chat requests through the real `openai` client while faults come in turn.
 * Per fault: requests started from the fault until the cluster is whole again (sent, succeeded, failed
 * with an error, hung, answered twice), when the gateway noticed, and when all was back.
 *
 *   sudo BETA9_TEST_MODEL=… npx node bench/faults/run.ts [--clients 4]
 *
 * Needs root (ip netns). "chat" wants two replicas on the three workers.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  Cluster,
  type ClusterGateway,
  clusterUnsupported,
  GATEWAY_ARGS,
  LIVENESS,
  SteadyLoad,
  testModelPath,
  type Worker,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";

const { values } = parseArgs({
  options: { clients: { type: "string", default: "4" }, timeline: { type: "string" } },
});
const MODEL = "chat";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  fault: string;
  sent: number;
  succeeded: number;
  failed: number;
  hung: number;
  twice: number;
  detectedMs: number | null;
  recoveredMs: number;
  errors: Record<string, number>;
}

const unsupported = clusterUnsupported();
if (unsupported) {
  console.error(`cannot build the cluster: ${unsupported}`);
  process.exit(1);
}

const cluster = Cluster.create();
let gw: ClusterGateway;
const rows: Row[] = [];
const windows: { fault: string; t0: number; t1: number; detectedMs: number | null }[] = [];
try {
  gw = await cluster.startGateway({ args: GATEWAY_ARGS });
  const workers = await Promise.all(cluster.workerHosts.map((h) => cluster.joinWorker(gw, h)));
  const key = (
    await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "bench", scopes: ["inference"] })
  ).body.key;
  // The client keeps the gateway's address: the tunnel from the client host outlives a gateway restart.
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
  const dep = {
    name: MODEL,
    source: testModelPath(),
    idle_seconds: 3600,
    context_size: 1024,
    min_replicas: 2,
    max_replicas: 2,
  };
  if ((await gw.api("POST", "/api/v1/deployments", dep)).status !== 201) throw new Error("could not deploy");

  const statusOf = async (w: Worker) =>
    (await gw.api<{ status: string }>("GET", `/api/v1/machines/${w.machineId}`).catch(() => undefined))?.body
      .status;
  const replicasReady = async () => {
    const res = await gw
      .api<{ replicas: { deployment: string; state: string; machine_id: string }[] }>(
        "GET",
        "/api/v1/replicas",
      )
      .catch(() => undefined);
    const serving = new Set<string>();
    for (const r of res?.body.replicas ?? []) {
      if (r.deployment !== MODEL || r.state !== "ready") continue;
      if ((await statusOf(workers.find((w) => w.machineId === r.machine_id)!)) === "READY")
        serving.add(r.machine_id);
    }
    return serving.size;
  };
  const whole = async () =>
    (await replicasReady()) >= 2 &&
    (await Promise.all(workers.map(statusOf))).every((s) => s === "READY" || s === "BUSY");
  const untilWhole = () =>
    waitFor(whole, { what: "the cluster whole again", timeoutMs: 180_000, intervalMs: 100 });
  const serving = async () => {
    const res = await gw.api<{ replicas: { deployment: string; machine_id: string }[] }>(
      "GET",
      "/api/v1/replicas",
    );
    return workers.filter((w) =>
      res.body.replicas.some((r) => r.deployment === MODEL && r.machine_id === w.machineId),
    );
  };
  const statusIs = (w: Worker, want: string) =>
    waitFor(async () => (await statusOf(w)) === want, {
      what: `${w.name} ${want}`,
      timeoutMs: 120_000,
      intervalMs: 50,
    });

  // Warm: the first request places chat; the sweeper adds the second replica.
  await waitFor(
    async () =>
      await client.chat.completions
        .create({ model: MODEL, max_tokens: 4, messages: [{ role: "user", content: "hi" }] })
        .then(
          () => true,
          () => false,
        ),
    { what: "a first answer", timeoutMs: 120_000 },
  );
  await untilWhole();

  const load = new SteadyLoad(client, MODEL, {
    clients: Number(values.clients),
    deadlineMs: 120_000,
    pauseAfterFailureMs: 500,
  });
  load.start();
  await sleep(3_000);

  const fault = async (name: string, inject: () => Promise<number | null>) => {
    const t0 = Date.now();
    const detected = await inject();
    await untilWhole();
    const t1 = Date.now();
    // Settle: a few seconds of normal service between faults.
    await sleep(3_000);
    windows.push({ fault: name, t0, t1, detectedMs: detected === null ? null : detected - t0 });
    console.error(
      `${name}: detected after ${detected === null ? "n/a" : detected - t0} ms, whole after ${t1 - t0} ms`,
    );
  };

  await fault("worker SIGKILL", async () => {
    const [victim] = await serving();
    cluster.killAgent(victim!);
    await statusIs(victim!, "UNHEALTHY");
    const at = Date.now();
    await cluster.startAgent(victim!);
    return at;
  });

  await fault("link cut, healed after OFFLINE", async () => {
    const [victim] = await serving();
    cluster.cut(victim!.host);
    await statusIs(victim!, "UNHEALTHY");
    const at = Date.now();
    await statusIs(victim!, "OFFLINE");
    cluster.heal(victim!.host);
    return at;
  });

  await fault("gateway restart (SIGTERM)", async () => {
    let at: number | null = null;
    gw = await cluster.restartGateway(gw, {
      whileDown: async () => {
        const since = Date.now();
        await waitFor(
          () =>
            workers.every((w) =>
              w
                .agent!.proc.logs()
                .some(
                  (e) => (e.time as number) >= since - 1_000 && e.msg === "lost the gateway; reconnecting",
                ),
            ),
          { what: "agents to notice", timeoutMs: 60_000, intervalMs: 50 },
        );
        at = Date.now();
      },
    });
    return at;
  });

  await fault("agent restart (SIGTERM, no drain)", async () => {
    const [victim] = await serving();
    await cluster.stopAgent(victim!);
    await statusIs(victim!, "UNHEALTHY");
    const at = Date.now();
    await cluster.startAgent(victim!);
    return at;
  });

  await fault("drain, then uncordon", async () => {
    const [victim] = await serving();
    await gw.api("POST", `/api/v1/machines/${victim!.machineId}/drain`);
    await statusIs(victim!, "DRAINED");
    await gw.api("POST", `/api/v1/machines/${victim!.machineId}/uncordon`);
    return null;
  });

  // Requests still unanswered are waited for up to their deadline: only then do they count as hung.
  await load.stop();
  for (const w of windows)
    rows.push({
      fault: w.fault,
      ...pick(load.summary(w.t0, w.t1)),
      detectedMs: w.detectedMs,
      recoveredMs: w.t1 - w.t0,
    });
  const all = load.summary();
  console.log(
    `\nfaults under a steady load (${values.clients} clients, short chat requests; liveness: beat ${LIVENESS.heartbeatMs} ms, UNHEALTHY after ${LIVENESS.unhealthyAfterMs} ms, OFFLINE after ${LIVENESS.offlineAfterMs} ms)\n`,
  );
  console.log(
    "| fault | sent | succeeded | failed | hung | answered twice | detected after | whole again after |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    console.log(
      `| ${r.fault} | ${r.sent} | ${r.succeeded} | ${r.failed} | ${r.hung} | ${r.twice} | ${r.detectedMs === null ? "n/a" : `${(r.detectedMs / 1000).toFixed(1)} s`} | ${(r.recoveredMs / 1000).toFixed(1)} s |`,
    );
  }
  console.log(
    `| whole run | ${all.sent} | ${all.succeeded} | ${all.failed} | ${all.hung} | ${all.answeredTwice} | | |`,
  );
  console.log("\nerrors the failed requests got:");
  for (const r of rows)
    for (const [msg, n] of Object.entries(r.errors)) console.log(`  ${r.fault}: ${n} × ${msg}`);
  // Failures outside the fault windows too (e.g. just after a window closed), placed in time.
  for (const [msg, n] of Object.entries(all.errors)) console.log(`  whole run: ${n} × ${msg}`);
  for (const r of load.requests) {
    if (r.outcome !== "failed" || windows.some((w) => r.startedAt >= w.t0 && r.startedAt < w.t1)) continue;
    const before = windows.filter((w) => w.t1 <= r.startedAt).at(-1);
    const when = before
      ? `${((r.startedAt - before.t1) / 1000).toFixed(1)} s after "${before.fault}" was whole again`
      : "before the first fault";
    console.log(`  outside the windows, ${when}: ${r.error}`);
  }
} finally {
  // --timeline FILE: every process's log lines, merged in time, to see what a failure followed.
  if (values.timeline) writeFileSync(values.timeline, `${cluster.timeline()}\n`);
  await cluster.destroy();
}

function pick(s: ReturnType<SteadyLoad["summary"]>) {
  return {
    sent: s.sent,
    succeeded: s.succeeded,
    failed: s.failed,
    hung: s.hung,
    twice: s.answeredTwice,
    errors: s.errors,
  };
}
