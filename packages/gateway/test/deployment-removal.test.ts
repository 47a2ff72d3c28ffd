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
 * A deployment's replicas go with it, even when the gateway that placed them has restarted since:
 * the agent says which models a gateway started for a deployment, and any gateway unloads those whose
 * deployment is gone. Models the machine's owner started by hand stay.
 */
let gw: GatewayProc;
let worker: ModelAgent;

type Served = { name: string; state: string; deployment?: boolean };
async function agentModels(): Promise<Served[]> {
  const res = await worker.control("GET", "/inference/status");
  return ((await res.json()) as { models: Served[] }).models;
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw);
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

describe("removing a deployment after a gateway restart", () => {
  it("unloads the replicas a gateway placed for it, and leaves a hand-started model alone", async () => {
    await worker.serve("by-hand");
    // That name is the owner's model: a deployment of it would route to whatever it is.
    const taken = await gw.api<{ error: { code: string; message: string } }>("POST", "/api/v1/deployments", {
      name: "by-hand",
      source: testModelPath(),
    });
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toMatch(
      /a machine serves a model named by-hand .*started there by hand/,
    );
    const dep = { name: "placed", source: testModelPath(), min_replicas: 1, context_size: 1024 };
    expect((await gw.api("POST", "/api/v1/deployments", dep)).status).toBe(201);
    await waitFor(async () => (await agentModels()).some((m) => m.name === "placed" && m.state === "ready"), {
      what: "the deployment's minimum replica",
      timeoutMs: 60_000,
      proc: worker.agent.proc,
    });
    expect((await agentModels()).map((m) => [m.name, m.deployment ?? false]).sort()).toEqual([
      ["by-hand", false],
      ["placed", true],
    ]);

    // A new gateway process on the same store and port: it placed nothing itself.
    await gw.proc.stop();
    gw = await startGateway({ dataDir: gw.dataDir, port: gw.port, args: ["--heartbeat-interval", "1s"] });
    await gw.proc.waitForLog((e) => e.msg === "agent connected", 30_000);
    expect((await gw.api("DELETE", "/api/v1/deployments/placed")).status).toBe(204);
    await waitFor(async () => !(await agentModels()).some((m) => m.name === "placed"), {
      what: "the removed deployment's replica to be unloaded",
      timeoutMs: 30_000,
      proc: gw.proc,
    });
    expect((await agentModels()).map((m) => m.name)).toEqual(["by-hand"]);
  }, 150_000);
});
