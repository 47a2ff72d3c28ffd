import {
  Cluster,
  type ClusterGateway,
  clusterUnsupported,
  testModelPath,
  type Worker,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ask,
  LIVENESS,
  machines,
  openaiClient,
  runningOn,
  showTimelineOnFailure,
  testDeployment,
} from "./fixture.ts";

/*
 * Requests that reach a gateway just restarted, before its agents are back: they wait for the
 * machine serving their model to return and are answered by it, instead of failing with "no machine
 * is READY". A model nobody could serve is refused at once all the same.
 */
const unsupported = clusterUnsupported();
if (unsupported) console.warn(`skipping the cluster fault tests: ${unsupported}`);

// The cluster tests' liveness, with an offline grace (the settling window) long enough for a loaded
// CI machine to restart the gateway and bring the agents back within it.
const ARGS = [
  "--heartbeat-interval",
  `${LIVENESS.heartbeatMs}ms`,
  "--unhealthy-after",
  `${LIVENESS.unhealthyAfterMs}ms`,
  "--offline-after",
  "30s",
];

describe.skipIf(unsupported)("requests at a gateway just restarted", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let workers: Worker[];
  let client: OpenAI;
  const setup = showTimelineOnFailure(() => cluster);

  beforeAll(
    () =>
      setup(async () => {
        cluster = Cluster.create({ workers: 2 });
        gw = await cluster.startGateway({ args: ARGS });
        workers = await Promise.all(cluster.workerHosts.map((h) => cluster.joinWorker(gw, h)));
        client = await openaiClient(gw);
        const dep = testDeployment("chat", testModelPath(), { min_replicas: 1 });
        expect((await gw.api("POST", "/api/v1/deployments", dep)).status).toBe(201);
        // A deployment no machine here can take (none has an NVIDIA GPU).
        const gpu = testDeployment("chat-gpu", testModelPath(), { gpu: "nvidia" });
        expect((await gw.api("POST", "/api/v1/deployments", gpu)).status).toBe(201);
        expect(await ask(client, "chat")).toMatch(/Paris/);
      }),
    150_000,
  );

  afterAll(async () => {
    await cluster?.destroy();
  });

  it("wait for the machine serving their model, then are answered by it; unknown models fail at once", async () => {
    const [serving] = await runningOn(workers, "chat");
    const server = workers.find((w) => w.name === serving)!;
    const others = workers.filter((w) => w !== server);
    // The serving agent is frozen across the restart, so it comes back only when the test says.
    server.agent!.proc.child.kill("SIGSTOP");
    try {
      const stoppedAt = Date.now();
      gw = await cluster.restartGateway(gw);
      const sentAt = Date.now();
      const settled: string[] = [];
      const pending = [1, 2, 3].map(async () => {
        const text = await ask(client, "chat");
        settled.push(text);
        return text;
      });
      const failures = Promise.allSettled(pending);

      // The other machines are back; the one serving chat is not: the requests are still waiting.
      await waitFor(
        async () => (await machines(gw)).filter((m) => m.status === "READY").length === others.length,
        { what: "the other machines READY again", timeoutMs: 20_000 },
      );
      // Meanwhile a model no machine serves or could take is refused at once, not held.
      const unknown = await ask(client, "no-such-model").catch((err: unknown) => err);
      expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
      const unplaceable = await ask(client, "chat-gpu").catch((err: unknown) => err);
      expect(unplaceable).toBeInstanceOf(OpenAI.APIError);
      expect((unplaceable as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect(settled).toEqual([]);

      server.agent!.proc.child.kill("SIGCONT");
      const results = await failures;
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
      // Answered, each (held requests released together are batched: wording may differ at temperature 0).
      for (const text of settled) expect(text.trim()).not.toBe("");
      const backAt = server
        .agent!.proc.logs()
        .find((e) => e.msg === "connected to gateway" && (e.time as number) >= stoppedAt)?.time as number;
      // They were sent before their machine was back, and it answered them: nothing loaded again.
      expect(sentAt).toBeLessThan(backAt);
      expect(await runningOn(workers, "chat")).toEqual([serving]);
      expect(gw.proc.logs().some((e) => String(e.msg).startsWith("loading chat"))).toBe(false);
      const usage = (await gw.api<{ groups: { group: string; requests: number }[] }>("GET", "/api/v1/usage"))
        .body.groups;
      expect(usage.find((g) => g.group === "chat")?.requests).toBe(4);
      console.info(
        `gateway restarted: requests sent ${sentAt - stoppedAt} ms after the stop were answered once their machine was back ${backAt - sentAt} ms later`,
      );
    } finally {
      server.agent!.proc.child.kill("SIGCONT");
    }
  }, 120_000);
});
