import { BETA9_VERSION } from "@beta9/protocol";
import {
  type AgentProc,
  builtinEngineModel,
  builtinEnginePort,
  type GatewayProc,
  inferenceKey,
  startGateway,
  startModelAgent,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The Ollama API at the gateway: the real `ollama` client (npm) → b9gateway (translates to OpenAI) →
 * agent channel → b9agent → builtin engine with the real SmolLM2. One machine, short answers.
 */

let gw: GatewayProc;
let agent: AgentProc;
let key: string;

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const worker = await startModelAgent(gw);
  agent = worker.agent;
  await worker.serve("smollm2");
  key = await inferenceKey(gw);
  await waitFor(async () => (await client().list()).models.length === 1, {
    what: "the gateway to list smollm2",
    timeoutMs: 20_000,
  });
}, 120_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

const client = () => new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${key}` } });
const ask = { model: "smollm2", messages: [{ role: "user", content: "What is the capital of France?" }] };

describe("Ollama API through the gateway, with the real ollama client", () => {
  it("reports the version, lists, shows and lists running models", async () => {
    expect(await new Ollama({ host: gw.url }).version()).toEqual({ version: BETA9_VERSION });
    const { models } = await client().list();
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({ name: "smollm2", model: "smollm2", details: { format: "gguf" } });
    expect(models[0]!.size).toBeGreaterThan(50_000_000);
    expect(models[0]!.digest).toMatch(/^[a-f0-9]{64}$/);
    expect(Number.isNaN(Date.parse(String(models[0]!.modified_at)))).toBe(false);
    const show = await client().show({ model: "smollm2:latest" });
    expect(show.details.format).toBe("gguf");
    expect(show.capabilities).toContain("completion");
    const ps = await client().ps();
    expect(ps.models[0]).toMatchObject({ name: "smollm2", size: models[0]!.size });
    expect((ps.models[0] as unknown as { machines: { name: string }[] }).machines.map((m) => m.name)).toEqual(
      ["worker"],
    );
  });

  it("chats, streamed and not", async () => {
    const whole = await client().chat({ ...ask, options: { num_predict: 16, temperature: 0 } });
    expect(whole.message.content).toMatch(/Paris/);
    expect(whole).toMatchObject({ done: true, done_reason: "stop", model: "smollm2" });
    expect(whole.eval_count).toBeGreaterThan(0);
    expect(whole.prompt_eval_count).toBeGreaterThan(0);
    expect(whole.total_duration).toBeGreaterThanOrEqual(whole.eval_duration);

    const parts = [];
    for await (const part of await client().chat({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from 1 to 100, one number per line." }],
      options: { num_predict: 12, temperature: 0 },
      stream: true,
    }))
      parts.push(part);
    expect(parts.length).toBeGreaterThan(3);
    expect(parts.slice(0, -1).every((p) => !p.done)).toBe(true);
    const last = parts.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.eval_count).toBeGreaterThan(0);
    expect(last.done_reason).toBe("length");
    expect(parts.map((p) => p.message.content).join("").length).toBeGreaterThan(0);
  });

  it("generates, templated and raw, streamed and not", async () => {
    const whole = await client().generate({
      model: "smollm2",
      prompt: "What is the capital of France?",
      options: { num_predict: 16, temperature: 0 },
    });
    expect(whole.response).toMatch(/Paris/);
    expect(whole).toMatchObject({ done: true, done_reason: "stop" });
    const parts = [];
    for await (const part of await client().generate({
      model: "smollm2",
      prompt: "The capital of France is",
      raw: true,
      options: { num_predict: 8, temperature: 0 },
      stream: true,
    }))
      parts.push(part);
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.at(-1)).toMatchObject({ done: true, done_reason: "length", eval_count: 8 });
    expect(parts.map((p) => p.response).join("")).toMatch(/Paris/);
  });

  it("embeds with /api/embed and the older /api/embeddings", async () => {
    const one = await client().embed({ model: "smollm2", input: "hello" });
    expect(one.embeddings).toHaveLength(1);
    expect(one.embeddings[0]).toHaveLength(576);
    const two = await client().embed({ model: "smollm2", input: ["hello", "world"] });
    expect(two.embeddings.map((e) => e.length)).toEqual([576, 576]);
    expect(two.embeddings[0]).toEqual(one.embeddings[0]);
    expect((await client().embeddings({ model: "smollm2", prompt: "hello" })).embedding).toHaveLength(576);
    expect((await client().embed({ model: "smollm2", input: [] })).embeddings).toEqual([]);
    await expect(client().embed({ model: "nope", input: [] })).rejects.toMatchObject({ status_code: 404 });
  });

  it("stops the generation on the machine when the client aborts a stream", async () => {
    const engine = builtinEnginePort(agent.proc.child.pid!);
    const before = (await builtinEngineModel(engine, "smollm2")).cancelled;
    const stream = await client().chat({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from 1 to 1000, one number per line." }],
      options: { num_predict: 1500, temperature: 0 },
      stream: true,
    });
    const started = Date.now();
    let parts = 0;
    await expect(
      (async () => {
        for await (const _ of stream) if (++parts === 3) stream.abort();
      })(),
    ).rejects.toThrow();
    // Lines already received in the same chunk as the third may still come out before the abort lands.
    expect(parts).toBeGreaterThanOrEqual(3);
    expect(parts).toBeLessThan(20);
    // 1,500 tokens take this machine many seconds; a cancelled generation ends at once.
    await waitFor(async () => (await builtinEngineModel(engine, "smollm2")).cancelled === before + 1, {
      what: "the engine to stop the generation",
      timeoutMs: 5_000,
    });
    expect((await builtinEngineModel(engine, "smollm2")).active).toBe(0);
    const next = await client().chat({ ...ask, options: { num_predict: 8 } });
    expect(next.done).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("answers errors in Ollama's shape: unknown model 404, no key 401, wrong scope 403, bad input 400", async () => {
    await expect(
      client().chat({ model: "nope", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({
      name: "ResponseError",
      status_code: 404,
      error: expect.stringMatching(/model "nope" not found/),
    });
    await expect(client().show({ model: "nope" })).rejects.toMatchObject({ status_code: 404 });
    await expect(new Ollama({ host: gw.url }).list()).rejects.toMatchObject({
      status_code: 401,
      error: expect.stringMatching(/API key/),
    });
    const readKey = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ro", scopes: ["read"] }))
      .body.key;
    await expect(
      new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${readKey}` } }).chat(ask),
    ).rejects.toMatchObject({ status_code: 403 });
    await expect(
      client().chat({ ...ask, options: { temperature: "hot" as unknown as number } }),
    ).rejects.toMatchObject({
      status_code: 400,
      error: 'option "temperature" must be a number',
    });
    // Ollama's own docs send JSON with curl -d (a form content type); that works too.
    const res = await fetch(`${gw.url}/api/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/x-www-form-urlencoded" },
      body: JSON.stringify({ model: "smollm2", messages: [] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ done: true, done_reason: "load" });
    // Served by a machine without a deployment: it is there already.
    expect(await client().pull({ model: "smollm2" })).toEqual({ status: "success" });
  });
});
