import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  testModelPath,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { llamaServerBin } from "./fixtures/llama-server-shim.ts";

/*
 * The llama.cpp engine against llama.cpp's real HTTP server: no llama-server binary installs here,
 * but the PyPI wheel xllamacpp embeds the same server; fixtures/llama_server.py starts it with
 * llama-server's flags and stands on the agent's PATH as `llama-server`.
 */

let gw: GatewayProc;
let agent: AgentProc;
let token: string;

beforeAll(async () => {
  const bin = llamaServerBin();

  gw = await startGateway();
  const path = await initAgent(gw, { name: "llama-box" });
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  cfg.models = { allowed_dirs: [dirname(testModelPath())] };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  token = cfg.machine.token;
  agent = await startAgent(path, { env: { PATH: `${bin}:${process.env.PATH}` } });
}, 60_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

async function control(method: string, path: string, body?: unknown) {
  const res = await fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: each assertion checks the JSON shape it needs.
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe("llama.cpp engine, real llama.cpp server", () => {
  it("is detected, serves SmolLM2 when asked for by name, and stops", async () => {
    const status = await control("GET", "/inference/status");
    const llama = status.body.engines.find((e: { engine: string }) => e.engine === "llamacpp");
    expect(llama).toMatchObject({ engine: "llamacpp", installed: true, formats: ["gguf"] });
    expect(llama.version).toMatch(/xllamacpp/);

    expect(
      (await control("POST", "/inference/pull", { model: "smollm2", source: testModelPath() })).status,
    ).toBe(201);
    const started = await control("POST", "/inference/start", {
      model: "smollm2",
      engine: "llamacpp",
      context_size: 2048,
    });
    expect(started.status).toBe(200);
    expect(started.body.models).toEqual([
      expect.objectContaining({ name: "smollm2", engine: "llamacpp", state: "ready" }),
    ]);

    const client = new OpenAI({ baseURL: `${agent.controlUrl}/v1`, apiKey: token });
    const chat = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 12,
    });
    expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
    let streamed = "";
    for await (const c of await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Count to three." }],
      max_tokens: 12,
      stream: true,
    })) {
      streamed += c.choices[0]?.delta?.content ?? "";
    }
    expect(streamed.length).toBeGreaterThan(0);

    const stopped = await control("POST", "/inference/stop", { model: "smollm2" });
    expect(stopped.body).toMatchObject({ status: "stopped", models: [] });
  });

  it("refuses an engine that cannot serve the format, saying why", async () => {
    const res = await control("POST", "/inference/start", { model: "smollm2", engine: "vllm" });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("no_engine");
    expect(res.body.error.message).toMatch(/vllm/i);
  });
});
