import {
  type AgentProc,
  builtinEngineModel,
  builtinEnginePort,
  type GatewayProc,
  startGateway,
  startModelAgent,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthenticationError,
  Beta9Client,
  ConnectionError,
  NotFoundError,
  PermissionDeniedError,
} from "../src/index.ts";
import { closedPort } from "./recording-server.ts";

/*
 * The TypeScript SDK's inference helpers end to end: Beta9Client → b9gateway → agent channel →
 * b9agent → builtin engine with the real SmolLM2.
 */

let gw: GatewayProc;
let agent: AgentProc;
let b9: Beta9Client;

const france = [{ role: "user" as const, content: "What is the capital of France?" }];

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const worker = await startModelAgent(gw);
  agent = worker.agent;
  await worker.serve("smollm2");
  const key = await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "app", scopes: ["inference"] });
  b9 = new Beta9Client({ baseUrl: gw.url, apiKey: key.body.key });
  await waitFor(async () => (await b9.inference.listModels()).some((m) => m.id === "smollm2"), {
    what: "the gateway to list smollm2",
    timeoutMs: 30_000,
  });
}, 180_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("inference through the gateway with @beta9/sdk", () => {
  it("chat answers with content, model, finish reason and usage", async () => {
    const r = await b9.inference.chat({ model: "smollm2", messages: france, maxTokens: 12, temperature: 0 });
    expect(r.content).toMatch(/Paris/);
    expect(r.model).toBeTruthy();
    expect(["stop", "length"]).toContain(r.finishReason);
    expect(r.usage?.promptTokens).toBeGreaterThan(0);
    expect(r.usage?.completionTokens).toBeGreaterThan(0);
  });

  it("chatStream yields the answer in pieces and ends with the usage", async () => {
    const stream = b9.inference.chatStream({
      model: "smollm2",
      messages: france,
      maxTokens: 12,
      temperature: 0,
    });
    const pieces: string[] = [];
    for await (const chunk of stream) if (chunk.content) pieces.push(chunk.content);
    expect(pieces.length).toBeGreaterThan(1);
    const result = stream.result();
    expect(result.content).toBe(pieces.join(""));
    expect(result.content).toMatch(/Paris/);
    expect(result.usage?.completionTokens).toBeGreaterThan(0);
    expect(result.finishReason).not.toBeNull();
  });

  it("aborting a stream stops the generation on the machine", async () => {
    const engine = builtinEnginePort(agent.proc.child.pid!);
    const before = (await builtinEngineModel(engine, "smollm2")).cancelled;
    const stream = b9.inference.chatStream({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from 1 to 1000, one number per line." }],
      maxTokens: 1500,
      temperature: 0,
    });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) stream.abort();
    expect(stream.aborted).toBe(true);
    await waitFor(async () => (await builtinEngineModel(engine, "smollm2")).cancelled === before + 1, {
      what: "the engine to stop the generation",
      timeoutMs: 5_000,
    });
  });

  it("generate completes a prompt and embed returns vectors", async () => {
    const g = await b9.inference.generate({
      model: "smollm2",
      prompt: "The capital of France is",
      maxTokens: 5,
    });
    expect(g.content.length).toBeGreaterThan(0);
    const one = await b9.inference.embed({ model: "smollm2", input: "Hello world" });
    expect(one.embedding.length).toBeGreaterThan(0);
    const two = await b9.inference.embed({ model: "smollm2", input: ["Hello", "world"] });
    expect(two.embeddings).toHaveLength(2);
    expect(two.embeddings[0]).toHaveLength(one.embedding.length);
  });

  it("an unknown model, a bad key, a key without the scope and a gateway that is down each raise their error", async () => {
    const ghost = await b9.inference.chat({ model: "ghost", messages: france }).catch((e: unknown) => e);
    expect(ghost).toSatisfy((e) => e instanceof NotFoundError && e.code === "model_not_found");
    expect((ghost as Error).message).toMatch(/ghost/);

    const bad = new Beta9Client({ baseUrl: gw.url, apiKey: "b9_not_a_key" });
    await expect(bad.inference.listModels()).rejects.toBeInstanceOf(AuthenticationError);

    const read = await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "reader", scopes: ["read"] });
    const reader = new Beta9Client({ baseUrl: gw.url, apiKey: read.body.key });
    const denied = await reader.inference
      .chatStream({ model: "smollm2", messages: france })
      .finalResult()
      .catch((e: unknown) => e);
    expect(denied).toSatisfy((e) => e instanceof PermissionDeniedError && e.code === "scope_missing");

    const down = new Beta9Client({ baseUrl: `http://127.0.0.1:${await closedPort()}`, apiKey: "b9_x" });
    const refused = await down.inference
      .chat({ model: "smollm2", messages: france })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectionError);
    expect((refused as Error).message).toMatch(/check the gateway URL and that the gateway is running/);
  });
});
