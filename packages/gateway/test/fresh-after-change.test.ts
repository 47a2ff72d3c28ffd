import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The gateway is up to date right after a change on a machine, not one heartbeat (5 s) later: the agent
 * beats at once when its models change, and a machine that turns out not to serve a model any more is
 * passed over (a deployment's replica placed again) instead of its "not served here" reaching the client.
 */

let gw: GatewayProc;
let worker: ModelAgent;

beforeAll(async () => {
  // The default heartbeat interval (5 s): what the fixes must beat.
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "fresh-box" });
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

/** One short chat completion through the gateway as the operator (whose models hand-served ones are). */
function chat(model: string): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
  });
}

describe("the gateway right after a change on a machine", () => {
  it("routes to a model started by hand within 1 s of the start", async () => {
    const pulled = await worker.control("POST", "/inference/pull", {
      model: "by-hand",
      source: testModelPath(),
    });
    expect(pulled.status).toBe(201);
    // Twice: a heartbeat of the interval's own may happen to fall within the second once, not both times.
    for (let round = 0; round < 2; round++) {
      const started = await worker.control("POST", "/inference/start", {
        model: "by-hand",
        context_size: 2048,
      });
      expect(started.status).toBe(200);
      const startedAt = Date.now();
      let answer: Response | undefined;
      let answeredAfterMs = 0;
      await waitFor(
        async () => {
          const res = await chat("by-hand");
          if (res.status !== 200) {
            await res.body?.cancel();
            return false;
          }
          answeredAfterMs = Date.now() - startedAt;
          answer = res;
          return true;
        },
        { what: "the gateway to answer for by-hand", timeoutMs: 15_000, intervalMs: 20 },
      );
      expect(answeredAfterMs).toBeLessThan(1_000);
      expect(((await answer!.json()) as { choices: unknown[] }).choices).toHaveLength(1);
      expect((await worker.control("POST", "/inference/stop", { model: "by-hand" })).status).toBe(200);
    }
  }, 60_000);

  it("places a deployment again when its replica was stopped on the machine", async () => {
    const dep = await gw.api("POST", "/api/v1/deployments", {
      name: "fresh-dep",
      source: testModelPath(),
      min_replicas: 0,
      max_replicas: 1,
      idle_seconds: 600,
      context_size: 2048,
    });
    expect(dep.status).toBe(201);
    const first = await chat("fresh-dep");
    expect(first.status).toBe(200);
    await first.json();

    // Stopped behind the gateway's back: its last heartbeat still says the replica is ready.
    const stopped = await worker.control("POST", "/inference/stop", { model: "fresh-dep" });
    expect(stopped.status).toBe(200);

    const again = await chat("fresh-dep");
    const text = await again.text();
    expect(again.status, text).toBe(200);
    expect((JSON.parse(text) as { choices: unknown[] }).choices).toHaveLength(1);
  }, 120_000);
});
