import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  inferenceKey,
  initAgent,
  startAgent,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * The channel's idle form (agent protocol 2): a real agent that is asked nothing holds no HTTP/2
 * session, only heartbeat lines; the first request switches its channel to HTTP/2, the real builtin
 * engine answers with SmolLM2, and once nothing has been asked for a while the channel goes idle
 * again, and serves again.
 */

let gw: GatewayProc;
let agent: AgentProc;
let key: string;

/** A real gateway and a real agent that may serve the test model. */
async function start(idleAfter: string): Promise<void> {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s", "--channel-idle-after", idleAfter] });
  const path = await initAgent(gw, { name: "idle-box" });
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  cfg.models = { allowed_dirs: [dirname(testModelPath())] };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  agent = await startAgent(path);
  key = await inferenceKey(gw);
}

async function stop(): Promise<void> {
  await agent?.proc.stop();
  await gw?.proc.stop();
}

const logged = (msg: string) => gw.proc.logs().filter((e) => e.msg === msg).length;
const machineStatus = async () =>
  (
    await gw.api<{ machines: { name: string; status: string }[] }>("GET", "/api/v1/machines")
  ).body.machines.find((m) => m.name === "idle-box")?.status;

async function deploy(minReplicas: number): Promise<void> {
  const dep = await gw.api("POST", "/api/v1/deployments", {
    name: "smollm2",
    source: testModelPath(),
    min_replicas: minReplicas,
    max_replicas: 1,
    context_size: 2048,
  });
  expect(dep.status).toBe(201);
}

async function ask(client: OpenAI): Promise<string> {
  const chat = await client.chat.completions.create({
    model: "smollm2",
    messages: [{ role: "user", content: "What is the capital of France?" }],
    max_tokens: 12,
    temperature: 0,
  });
  return chat.choices[0]?.message.content ?? "";
}

describe("the agent channel's idle form", () => {
  beforeAll(() => start("2s"), 60_000);
  afterAll(stop);

  it("serves a chat on an idle channel, goes idle again, and serves again", async () => {
    // Heartbeats alone keep the machine READY: no HTTP/2 session was needed for that.
    await waitFor(async () => (await machineStatus()) === "READY", { what: "the idle agent READY" });
    expect(logged("agent channel switched to HTTP/2")).toBe(0);

    await deploy(0);
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    expect(await ask(client)).toMatch(/Paris/);
    expect(logged("agent channel switched to HTTP/2")).toBeGreaterThanOrEqual(1);

    // Nothing asked for 2 s: the agent is asked for an idle channel, dials it, and stays READY.
    await waitFor(() => logged("agent channel idle: the agent is asked for an idle one") >= 1, {
      what: "the channel going idle",
      timeoutMs: 60_000,
    });
    const switches = logged("agent channel switched to HTTP/2");
    await waitFor(async () => agent.proc.logs().filter((e) => e.msg === "connected to gateway").length >= 2, {
      what: "the agent on its new idle channel",
    });
    expect(await machineStatus()).toBe("READY");

    expect(await ask(client)).toMatch(/Paris/);
    expect(logged("agent channel switched to HTTP/2")).toBe(switches + 1);
    // No channel was torn down on the way: the old one was left to close once the new one was up.
    expect(logged("closing agent channel")).toBe(0);
  }, 180_000);
});

/*
 * Failure detection in both forms, within today's bounds: the gateway takes a frozen agent (no close,
 * no beats) for UNHEALTHY within 15 s, and the agent takes a frozen gateway (no acks) for gone and
 * dials again, whether its channel is idle or HTTP/2.
 */
describe("failure detection on idle and HTTP/2 channels", () => {
  beforeAll(() => start("10m"), 60_000);
  afterAll(stop);

  async function agentFrozen(): Promise<void> {
    await waitFor(async () => (await machineStatus()) === "READY", { what: "READY" });
    const silenceClosed = () =>
      gw.proc
        .logs()
        .filter((e) => e.msg === "closing agent channel" && /^no heartbeat/.test(String(e.reason))).length;
    const closedBefore = silenceClosed();
    agent.proc.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    try {
      await waitFor(async () => (await machineStatus()) === "UNHEALTHY", {
        what: "UNHEALTHY",
        timeoutMs: 16_000,
        intervalMs: 250,
      });
      expect(Date.now() - frozenAt).toBeLessThanOrEqual(15_500);
      // The silent channel is closed by the gateway's next sweep (once a second): an agent thawed
      // before it would carry on with that channel.
      await waitFor(() => silenceClosed() > closedBefore, {
        what: "the silent channel closed",
        timeoutMs: 5_000,
      });
    } finally {
      agent.proc.child.kill("SIGCONT");
    }
    await waitFor(async () => (await machineStatus()) === "READY", {
      what: "READY after thaw",
      timeoutMs: 30_000,
    });
  }

  async function gatewayFrozen(): Promise<void> {
    const silent = () =>
      agent.proc.logs().filter((e) => e.msg === "gateway stopped acknowledging heartbeats; reconnecting")
        .length;
    const before = silent();
    gw.proc.child.kill("SIGSTOP");
    try {
      await waitFor(() => silent() > before, {
        what: "the agent noticing the silent gateway",
        timeoutMs: 20_000,
      });
    } finally {
      gw.proc.child.kill("SIGCONT");
    }
    await waitFor(async () => (await machineStatus()) === "READY", {
      what: "READY after thaw",
      timeoutMs: 30_000,
    });
  }

  it("on an idle channel", async () => {
    expect(logged("agent channel switched to HTTP/2")).toBe(0);
    await agentFrozen();
    await gatewayFrozen();
    expect(logged("agent channel switched to HTTP/2")).toBe(0);
  }, 120_000);

  it("on an HTTP/2 channel", async () => {
    // Placing the deployment calls the agent: its channel switches and stays HTTP/2 (idle after 10 min).
    await deploy(1);
    await waitFor(() => logged("agent channel switched to HTTP/2") === 1, {
      what: "the switch",
      timeoutMs: 30_000,
    });
    await agentFrozen();
    // The frozen agent's channel was closed; a chat switches its new one.
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    expect(await ask(client)).toMatch(/Paris/);
    await waitFor(() => logged("agent channel switched to HTTP/2") === 2, { what: "the second switch" });
    await gatewayFrozen();
  }, 180_000);
});
