import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startAgent,
  startGateway,
  startModelAgent,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * An agent that dies (SIGKILL) or is restarted serves again what its owner started by hand, without
 * anyone asking: the real gateway, agent, builtin engine and SmolLM2. A model stopped by hand stays
 * stopped; a deployment's replica is the gateway's to place again (test/cluster/worker-killed.test.ts).
 */

let gw: GatewayProc;
let worker: ModelAgent;
let agent: AgentProc;
let key: string;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "restarted" });
  agent = worker.agent;
  key = await inferenceKey(gw);
}, 180_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

/** The control API of the agent running now (its port changes with each start). */
const control = (method: string, path: string, body?: unknown) =>
  fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${worker.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function models(): Promise<{ name: string; state: string }[]> {
  return (
    (await (await control("GET", "/inference/status")).json()) as {
      models: { name: string; state: string }[];
    }
  ).models;
}

const listed = () =>
  (
    JSON.parse(readFileSync(join(dirname(agent.configPath), "served.json"), "utf8")) as {
      served: { model: string }[];
    }
  ).served;

async function restart(signal: NodeJS.Signals): Promise<void> {
  await agent.proc.stop(signal);
  agent = await startAgent(agent.configPath);
}

const chat = () =>
  new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions.create({
    model: "smollm2",
    messages: [{ role: "user", content: "Say hello." }],
    max_tokens: 4,
    temperature: 0,
  });

describe("an agent restarted", () => {
  it("after SIGKILL serves again the model started by hand, and the gateway routes to it", async () => {
    await worker.serve("smollm2");
    expect(listed()).toEqual([expect.objectContaining({ model: "smollm2" })]);
    await restart("SIGKILL");
    await waitFor(async () => (await models()).some((m) => m.name === "smollm2" && m.state === "ready"), {
      what: "smollm2 ready again after the agent was killed",
      timeoutMs: 60_000,
    });
    await waitFor(
      async () => {
        try {
          return (await chat()).choices.length === 1;
        } catch {
          return false;
        }
      },
      { what: "the gateway to answer through the restarted agent", timeoutMs: 30_000 },
    );
    await agent.proc.waitForLog((e) => String(e.msg).includes("served again, as before the agent restarted"));
  }, 180_000);

  it("after a graceful stop serves it again too; a model stopped by hand stays stopped", async () => {
    await restart("SIGTERM");
    await waitFor(async () => (await models()).some((m) => m.name === "smollm2" && m.state === "ready"), {
      what: "smollm2 ready again after a graceful restart",
      timeoutMs: 60_000,
    });
    expect((await control("POST", "/inference/stop", { model: "smollm2" })).status).toBe(200);
    expect(listed()).toEqual([]);
    await restart("SIGKILL");
    expect(await models()).toEqual([]);
    expect(listed()).toEqual([]);
  }, 180_000);

  it("leaves a deployment's replica to the gateway, which places it again itself", async () => {
    // As a gateway starts it (the model is in the store from the first test).
    const started = await control("POST", "/inference/start", {
      model: "smollm2",
      context_size: 2048,
      deployment: true,
    });
    expect(started.status).toBe(200);
    expect((await models()).some((m) => m.name === "smollm2" && m.state === "ready")).toBe(true);
    expect(listed()).toEqual([]);
  }, 120_000);
});
