import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  type AgentProc,
  BIN,
  type GatewayProc,
  inferenceKey,
  initAgent,
  startAgent,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * Deployments for real: a model deployed with min 0 runs nowhere until the first request, which
 * places it, has the agent pull and load it, and then answers; idle, it is unloaded again.
 */

let gw: GatewayProc;
let agent: AgentProc;
let token: string;
let key: string;

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const path = await initAgent(gw, { name: "cold-box" });
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  cfg.models = { allowed_dirs: [dirname(testModelPath())] };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  token = cfg.machine.token;
  agent = await startAgent(path);
  key = await inferenceKey(gw);
}, 60_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

async function agentModels(): Promise<{ name: string; state: string }[]> {
  const res = await fetch(`${agent.controlUrl}/inference/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return ((await res.json()) as { models: { name: string; state: string }[] }).models;
}

describe("deployments: scale from zero and back", () => {
  it("loads on the first request, answers, then unloads when idle", async () => {
    const dep = await gw.api("POST", "/api/v1/deployments", {
      name: "smollm2",
      source: testModelPath(),
      min_replicas: 0,
      max_replicas: 1,
      idle_seconds: 10,
      context_size: 2048,
    });
    expect(dep.status).toBe(201);
    expect(await agentModels()).toEqual([]);

    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const chat = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "What is the capital of France?" }],
      max_tokens: 12,
      temperature: 0,
    });
    expect(chat.choices[0]?.message.content).toMatch(/Paris/);
    expect(await agentModels()).toEqual([expect.objectContaining({ name: "smollm2", state: "ready" })]);

    const ps = await gw.api<{ replicas: { deployment: string; machine_name: string; state: string }[] }>(
      "GET",
      "/api/v1/replicas",
    );
    expect(ps.body.replicas).toEqual([
      expect.objectContaining({ deployment: "smollm2", machine_name: "cold-box", state: "ready" }),
    ]);
    // A client holding only an inference key may watch its cold start too.
    const psByInferenceKey = await gw.api<{ replicas: { state: string }[] }>(
      "GET",
      "/api/v1/replicas",
      undefined,
      key,
    );
    expect(psByInferenceKey.status).toBe(200);
    expect(psByInferenceKey.body.replicas).toEqual([expect.objectContaining({ state: "ready" })]);
    const table = execFileSync(process.execPath, [BIN.cli, "model", "ps"], {
      encoding: "utf8",
      env: {
        ...process.env,
        BETA9_GATEWAY: gw.url,
        BETA9_API_KEY: gw.adminKey,
        BETA9_CLI_CONFIG: "/nonexistent/cli.json",
      },
    });
    expect(table).toMatch(/^MODEL\s+MACHINE\s+STATE/m);
    expect(table).toMatch(/smollm2\s+cold-box\s+ready\s+builtin/);

    await waitFor(async () => (await agentModels()).length === 0, {
      what: "the idle replica to be unloaded",
      timeoutMs: 40_000,
      intervalMs: 500,
    });
    // The agent may report the model gone a moment before the gateway logs why it unloaded it.
    await gw.proc.waitForLog((e) => String(e.msg).startsWith("unloaded smollm2: idle"), 5_000);

    // And back again from zero.
    const again = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
    });
    expect(again.choices[0]?.message.content?.length).toBeGreaterThan(0);

    // Removing the deployment unloads what runs for it.
    expect((await gw.api("DELETE", "/api/v1/deployments/smollm2")).status).toBe(204);
    await waitFor(async () => (await agentModels()).length === 0, {
      what: "the removed deployment's replica to be unloaded",
      timeoutMs: 20_000,
      intervalMs: 500,
    });
  }, 90_000);

  it("Ollama's load and `keep_alive: 0` (ollama stop) load and unload a deployment's replica", async () => {
    expect(
      (
        await gw.api("POST", "/api/v1/deployments", {
          name: "stoppable",
          source: testModelPath(),
          idle_seconds: 3600,
          context_size: 2048,
        })
      ).status,
    ).toBe(201);
    const ollama = new Ollama({ host: gw.url, headers: { authorization: `Bearer ${key}` } });
    const loaded = await ollama.generate({ model: "stoppable", prompt: "" });
    expect(loaded).toMatchObject({ done: true, done_reason: "load" });
    expect(await agentModels()).toEqual([expect.objectContaining({ name: "stoppable", state: "ready" })]);
    const stopped = await ollama.generate({ model: "stoppable", prompt: "", keep_alive: 0 });
    expect(stopped).toMatchObject({ done: true, done_reason: "unload" });
    expect(await agentModels()).toEqual([]);
    // Still deployed: the next request loads it again.
    const again = await ollama.chat({
      model: "stoppable",
      messages: [{ role: "user", content: "Hi" }],
      options: { num_predict: 4 },
    });
    expect(again.done).toBe(true);
    expect((await gw.api("DELETE", "/api/v1/deployments/stoppable")).status).toBe(204);
    await waitFor(async () => (await agentModels()).length === 0, {
      what: "the removed deployment's replica to be unloaded",
      timeoutMs: 20_000,
      intervalMs: 500,
    });
  }, 90_000);

  it("answers 503 with Retry-After and the reason when no machine fits", async () => {
    await gw.api("POST", "/api/v1/deployments", {
      name: "needs-gpu",
      source: testModelPath(),
      gpu: "nvidia",
    });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "needs-gpu", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("unavailable");
    expect(body.error.message).toMatch(/no ready machine in pool external has a nvidia GPU/);
  });
});
