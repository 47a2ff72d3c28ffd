import { type GatewayProc, type ModelAgent, startGateway, startModelAgent } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Inference bodies are checked at the gateway's edge against the protocol's schemas (openai.ts,
 * ollama.ts): a field the gateway reads, sent with the wrong type, is refused there in the API's own
 * error shape, before any machine sees it; fields it does not read pass through to the engine.
 * Real gateway, agent and builtin engine with SmolLM2.
 */

let gw: GatewayProc;
let worker: ModelAgent;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw);
  await worker.serve("smollm2");
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

async function inferenceKey(name: string): Promise<{ id: string; key: string }> {
  const res = await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", {
    name,
    scopes: ["inference"],
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function post(key: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** The requests the usage API counts for a key (0 before its first). */
async function requestsOf(id: string): Promise<number> {
  const res = await gw.api<{ groups: { group: string; requests: number }[] }>(
    "GET",
    "/api/v1/usage?group_by=key",
  );
  return res.body.groups.find((g) => g.group === id)?.requests ?? 0;
}

const messages = [{ role: "user", content: "Say hi" }];

describe("OpenAI bodies", () => {
  it("refuses a wrongly typed field at the gateway, in OpenAI's shape, before a machine sees it", async () => {
    const { id, key } = await inferenceKey("openai-bodies");
    const badStream = await post(key, "/v1/chat/completions", { model: "smollm2", messages, stream: "yes" });
    expect(badStream).toEqual({
      status: 400,
      body: {
        error: {
          type: "invalid_request_error",
          code: "bad_request",
          param: null,
          message: "`stream` must be true or false",
        },
      },
    });
    const badMax = await post(key, "/v1/completions", { model: "smollm2", prompt: "Hi", max_tokens: "2" });
    expect(badMax).toMatchObject({
      status: 400,
      body: { error: { code: "bad_request", message: "`max_tokens` must be a number" } },
    });
    const noModel = await post(key, "/v1/embeddings", { model: "", input: "hi" });
    expect(noModel).toMatchObject({ status: 400, body: { error: { message: "`model` is required" } } });
    const notObject = await post(key, "/v1/chat/completions", [1]);
    expect(notObject).toMatchObject({
      status: 400,
      body: { error: { message: "the body must be a JSON object" } },
    });
    // Fields the gateway does not read go to the engine as sent.
    const ok = await post(key, "/v1/chat/completions", {
      model: "smollm2",
      messages,
      max_tokens: 2,
      user: "someone",
      metadata: { trace: "abc" },
    });
    expect(ok.status).toBe(200);
    // Only the answered request reached a machine and was metered; the refused ones cost nothing.
    expect(await requestsOf(id)).toBe(1);
  });
});

describe("Ollama bodies", () => {
  it("refuses a wrongly typed field in Ollama's shape, and lets fields it does not read pass", async () => {
    const { id, key } = await inferenceKey("ollama-bodies");
    expect(await post(key, "/api/chat", { model: "smollm2", messages, stream: "yes" })).toEqual({
      status: 400,
      body: { error: "stream must be true or false" },
    });
    expect(await post(key, "/api/embed", { model: "smollm2", input: [1, 2] })).toEqual({
      status: 400,
      body: { error: "input must be a string or an array of strings" },
    });
    expect(await post(key, "/api/generate", { model: "smollm2", prompt: 3 })).toEqual({
      status: 400,
      body: { error: "prompt must be a string" },
    });
    const ok = await post(key, "/api/generate", {
      model: "smollm2",
      prompt: "Hi",
      stream: false,
      keep_alive: "5m",
      options: { num_predict: 2 },
    });
    expect(ok).toMatchObject({ status: 200, body: { done: true } });
    expect(await requestsOf(id)).toBe(1);
  });
});
