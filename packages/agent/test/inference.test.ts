import { createReadStream, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import {
  type AgentProc,
  builtinEnginePids,
  type GatewayProc,
  initAgent,
  processAlive,
  startAgent,
  startGateway,
  TEST_MODEL,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * Inference on a real agent with the builtin engine and the real SmolLM2 GGUF: pull (from a local
 * HTTP server and from an allowed directory), start, chat through the real `openai` client against
 * the agent's authenticated /v1, embeddings, stop, crash and restart, bad input.
 */

let gw: GatewayProc;
let agent: AgentProc;
let token: string;
let files: Server;
let filesUrl: string;

async function control<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  bearer = token,
) {
  const res = await fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: T | undefined;
  try {
    parsed = JSON.parse(text) as T;
  } catch {}
  return { status: res.status, text, body: parsed as T };
}

beforeAll(async () => {
  const model = testModelPath();
  files = createServer((req, res) => {
    if (req.url !== `/${TEST_MODEL.file}`) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      "content-length": statSync(model).size,
      "content-type": "application/octet-stream",
    });
    createReadStream(model).pipe(res);
  });
  await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;

  gw = await startGateway();
  const path = await initAgent(gw, { name: "gpu-box" });
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  cfg.models = { allowed_dirs: [dirname(model)] };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  token = cfg.machine.token;
  agent = await startAgent(path);
}, 120_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
  files?.close();
});

describe("inference on the agent (builtin engine, real SmolLM2)", () => {
  it("pulls over HTTP with NDJSON progress and records provenance", async () => {
    const res = await control("POST", "/inference/pull", {
      model: "smollm2",
      source: `${filesUrl}/${TEST_MODEL.file}`,
      stream: true,
      sha256: TEST_MODEL.sha256,
    });
    expect(res.status).toBe(200);
    const lines = res.text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(2);
    const last = lines.at(-1);
    expect(last).toMatchObject({
      status: "success",
      model: {
        name: "smollm2",
        sha256: TEST_MODEL.sha256,
        size: TEST_MODEL.bytes,
        format: "gguf",
        architecture: "llama",
        quantization: "Q4_1",
        context_length: 8192,
        license: "Apache-2.0",
      },
    });
    expect(lines.some((l) => typeof l.completed === "number" && l.total === TEST_MODEL.bytes)).toBe(true);
  });

  it("pulls from a directory the owner allowed, answering 201 when not streaming", async () => {
    const res = await control("POST", "/inference/pull", { model: "smollm2-local", source: testModelPath() });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: "smollm2-local", sha256: TEST_MODEL.sha256 });
  });

  it("refuses paths outside the allowed directories, bad names and bad checksums", async () => {
    expect(
      (await control("POST", "/inference/pull", { model: "evil", source: "/etc/passwd" })).body,
    ).toMatchObject({ error: { code: "path_not_allowed" } });
    expect(
      (
        await control("POST", "/inference/pull", {
          model: "evil",
          source: `${dirname(testModelPath())}/../../package.json`,
        })
      ).body,
    ).toMatchObject({ error: { code: "path_not_allowed" } });
    const badName = await control("POST", "/inference/pull", {
      model: "x; rm -rf /",
      source: testModelPath(),
    });
    expect(badName).toMatchObject({ status: 400, body: { error: { code: "invalid_model_name" } } });
    const mismatch = await control("POST", "/inference/pull", {
      model: "other",
      source: `${filesUrl}/${TEST_MODEL.file}`,
      sha256: "0".repeat(64),
    });
    expect(mismatch).toMatchObject({ status: 422, body: { error: { code: "checksum_mismatch" } } });
    expect((await control("POST", "/inference/start", { model: "other" })).body).toMatchObject({
      error: { code: "model_not_found" },
    });
  });

  it("serves the model to the real openai client through the agent's authenticated /v1", async () => {
    const started = await control("POST", "/inference/start", { model: "smollm2" });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({
      status: "running",
      running: true,
      endpoint: `${agent.controlUrl}/v1`,
      models: [{ name: "smollm2", engine: "builtin", state: "ready" }],
    });

    const client = new OpenAI({ baseURL: `${agent.controlUrl}/v1`, apiKey: token });
    expect((await client.models.list()).data.map((m) => m.id)).toContain("smollm2");
    const chat = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "What is the capital of France?" }],
      max_tokens: 16,
      temperature: 0,
    });
    expect(chat.choices[0]?.message.content).toMatch(/Paris/);
    expect(chat.usage?.completion_tokens).toBeGreaterThan(0);

    const stream = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from one to five." }],
      max_tokens: 24,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      chunks++;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text.length).toBeGreaterThan(0);

    const emb = await client.embeddings.create({ model: "smollm2", input: ["hello", "world"] });
    expect(emb.data).toHaveLength(2);
    expect(emb.data[0]?.embedding).toHaveLength(576);

    const wrongKey = new OpenAI({ baseURL: `${agent.controlUrl}/v1`, apiKey: "b9m_wrong", maxRetries: 0 });
    await expect(wrongKey.models.list()).rejects.toMatchObject({ status: 401 });
    await expect(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("reports engines and served models to the gateway in its heartbeat", async () => {
    const id = YAML.parse(readFileSync(agent.configPath, "utf8")).machine.id;
    await waitFor(
      async () => {
        const m = (
          await gw.api<{ inference: { models: { name: string; state: string }[] } | null }>(
            "GET",
            `/api/v1/machines/${id}`,
          )
        ).body;
        return m.inference?.models.some((x) => x.name === "smollm2" && x.state === "ready") ?? false;
      },
      { what: "the served model in the gateway's view", timeoutMs: 15_000 },
    );
    const m = (
      await gw.api<{
        inference: { engines: { engine: string; installed: boolean }[]; memory_free_bytes: number };
      }>("GET", `/api/v1/machines/${id}`)
    ).body;
    expect(m.inference.engines).toContainEqual({ engine: "builtin", installed: true });
    expect(m.inference.memory_free_bytes).toBeGreaterThan(0);
  });

  it("an engine that crashes shows error with its last lines; the agent lives on and starts it again", async () => {
    const pids = builtinEnginePids(agent.proc.child.pid!);
    expect(pids.length).toBe(1);
    process.kill(pids[0]!, "SIGKILL");
    await waitFor(
      async () => (await control<{ status: string }>("GET", "/inference/status")).body.status === "error",
      { what: "status error" },
    );
    const st = (await control<{ models: { state: string; error?: string }[] }>("GET", "/inference/status"))
      .body;
    expect(st.models[0]?.state).toBe("error");
    expect((await fetch(`${agent.controlUrl}/health`)).status).toBe(200);
    const again = await control("POST", "/inference/start", { model: "smollm2" });
    expect(again.body).toMatchObject({ status: "running" });
  });

  it("refuses a model that will not fit, with the numbers", async () => {
    const res = await control<{ error: { code: string; message: string } }>("POST", "/inference/start", {
      model: "smollm2-local",
      context_size: 1_048_576,
    });
    expect(res.status).toBe(507);
    expect(res.body.error.code).toBe("insufficient_memory");
    expect(res.body.error.message).toMatch(/\d+(\.\d+)? GiB/);
  });

  it("stops the model and its engine process", async () => {
    const stopped = await control("POST", "/inference/stop", {});
    expect(stopped.body).toMatchObject({ status: "stopped", running: false, models: [] });
    await waitFor(async () => builtinEnginePids(agent.proc.child.pid!).length === 0, {
      what: "the engine process to exit",
    });
  });

  it("leaves no engine behind when the agent is SIGKILLed", async () => {
    await control("POST", "/inference/start", { model: "smollm2" });
    const pids = builtinEnginePids(agent.proc.child.pid!);
    expect(pids.length).toBe(1);
    agent.proc.child.kill("SIGKILL");
    await waitFor(() => !pids.some(processAlive), { what: "the orphan engine to die", timeoutMs: 10_000 });
  });
});
