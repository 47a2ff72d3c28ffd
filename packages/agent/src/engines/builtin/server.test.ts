import type { ChatCompletion, ChatCompletionChunk, EmbeddingList, TextCompletion } from "@beta9/protocol";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelView } from "./models.ts";
import { type EngineProcess, engineAuth, readEvents, startEngine } from "./testing/engine-process.ts";

/*
 * The real builtin engine (a child process) serving the real SmolLM2-135M, loaded once for the file.
 */

let engine: EngineProcess;
const MODEL = "smol";
const CONTEXT = 2048;
/** SmolLM2 at temperature 0 goes on counting for well over 1500 tokens: a generation that lasts. */
const COUNTING = "1, 2, 3, 4, 5,";
const question = [{ role: "user", content: "What is the capital of France?" }];

type AdminList = { models: ModelView[]; memory: { budget_bytes: number; used_bytes: number } };
const stats = async (): Promise<ModelView> => {
  const { body } = await engine.api<AdminList>("GET", "/admin/models");
  const m = body.models.find((x) => x.name === MODEL);
  if (!m) throw new Error(`${MODEL} is not loaded`);
  return m;
};
const post = (path: string, body: unknown, signal?: AbortSignal) =>
  fetch(engine.url + path, {
    method: "POST",
    headers: { ...engineAuth, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: signal ?? null,
  });

beforeAll(async () => {
  engine = await startEngine();
  const load = await engine.api<ModelView>("POST", "/admin/models", {
    name: MODEL,
    path: testModelPath(),
    context_size: CONTEXT,
    parallel: 2,
  });
  expect(load.status, JSON.stringify(load.body)).toBe(201);
});
afterAll(async () => {
  await engine?.stop();
});

type Err = { error: { message: string; type: string; code: string; param: string | null } };

describe("builtin engine: admin", () => {
  it("answers no request without its key, not even /health (401, OpenAI's error shape)", async () => {
    for (const [method, path, authorization] of [
      ["GET", "/health", undefined],
      ["GET", "/admin/models", undefined],
      ["DELETE", `/admin/models/${MODEL}`, "Bearer wrong-key-0123456789"],
      ["POST", "/v1/chat/completions", `Bearer ${"x".repeat(26)}`],
    ] as const) {
      const res = await fetch(engine.url + path, {
        method,
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(((await res.json()) as Err).error).toMatchObject({
        code: "unauthorized",
        type: "authentication_error",
      });
    }
    expect((await stats()).state).toBe("ready");
  });

  it("answers /health and prints exactly one line on stdout", async () => {
    expect((await engine.api("GET", "/health")).body).toEqual({ status: "ok" });
    expect(engine.stdout).toEqual([JSON.stringify({ event: "listening", port: engine.port })]);
  });

  it("lists the loaded model with its context, memory and sequences", async () => {
    const m = await stats();
    expect(m).toMatchObject({
      name: MODEL,
      path: testModelPath(),
      context_size: CONTEXT,
      state: "ready",
      parallel: 2,
    });
    expect(m.memory_bytes).toBeGreaterThan(90_000_000); // the weights alone are 94 MiB
    const models = await engine.api<{ object: string; data: { id: string; object: string }[] }>(
      "GET",
      "/v1/models",
    );
    expect(models.body.object).toBe("list");
    expect(models.body.data).toEqual([expect.objectContaining({ id: MODEL, object: "model" })]);
  });

  it("loads idempotently, and refuses the same name for another file", async () => {
    const again = await engine.api<ModelView>("POST", "/admin/models", {
      name: MODEL,
      path: testModelPath(),
    });
    expect(again.status).toBe(200);
    expect(again.body.context_size).toBe(CONTEXT);
    const other = await engine.api<{ error: { code: string } }>("POST", "/admin/models", {
      name: MODEL,
      path: "/elsewhere/model.gguf",
    });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("conflict");
  });

  it("refuses a missing file (404) and a file that is not a GGUF (400) with clear codes", async () => {
    const missing = await engine.api<{ error: { code: string; message: string } }>("POST", "/admin/models", {
      name: "ghost",
      path: "/nonexistent/model.gguf",
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("model_file_not_found");
    const notGguf = await engine.api<{ error: { code: string; message: string } }>("POST", "/admin/models", {
      name: "text",
      path: import.meta.filename,
    });
    expect(notGguf.status).toBe(400);
    expect(notGguf.body.error).toMatchObject({ code: "invalid_model_file", type: "invalid_request_error" });
    expect(notGguf.body.error.message).toMatch(/not a GGUF/);
    const names = (await engine.api<AdminList>("GET", "/admin/models")).body.models.map((m) => m.name);
    expect(names).toEqual([MODEL]);
  });
});

describe("builtin engine: OpenAI API", () => {
  let answer: ChatCompletion;

  it("answers a chat, counting usage", async () => {
    const res = await post("/v1/chat/completions", {
      model: MODEL,
      messages: question,
      temperature: 0,
      seed: 7,
      max_tokens: 40,
    });
    expect(res.status).toBe(200);
    answer = (await res.json()) as ChatCompletion;
    expect(answer).toMatchObject({ object: "chat.completion", model: MODEL });
    const choice = answer.choices[0]!;
    expect(choice.message.role).toBe("assistant");
    expect(choice.message.content).toMatch(/Paris/);
    expect(choice.finish_reason).toBe("stop");
    const u = answer.usage;
    expect(u.prompt_tokens).toBeGreaterThan(5);
    expect(u.completion_tokens).toBeGreaterThan(0);
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
  });

  it("stops at max_tokens with finish_reason length", async () => {
    const res = await post("/v1/chat/completions", {
      model: MODEL,
      messages: [{ role: "user", content: "Write a long story about a dragon." }],
      max_completion_tokens: 5,
    });
    const body = (await res.json()) as ChatCompletion;
    expect(body.choices[0]!.finish_reason).toBe("length");
    expect(body.usage.completion_tokens).toBe(5);
  });

  it("streams a chat: role first, text in several chunks, [DONE] last, same text as without streaming", async () => {
    const res = await post("/v1/chat/completions", {
      model: MODEL,
      messages: question,
      temperature: 0,
      seed: 7,
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    const events = await readEvents(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1) as ChatCompletionChunk[];
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const withText = chunks.filter((c) => (c.choices[0]?.delta.content ?? "") !== "");
    expect(withText.length).toBeGreaterThan(2);
    expect(text).toBe(answer.choices[0]!.message.content);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(answer.usage);
    for (const c of chunks)
      expect(c).toMatchObject({ object: "chat.completion.chunk", id: chunks[0]!.id, model: MODEL });
  });

  it("completes text, streamed and not", async () => {
    const req = { model: MODEL, prompt: "The capital of France is", max_tokens: 8, temperature: 0 };
    const res = await post("/v1/completions", req);
    const body = (await res.json()) as TextCompletion;
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]!.text.length).toBeGreaterThan(0);
    expect(body.choices[0]!.finish_reason).toBe("length");
    expect(body.usage).toEqual({
      prompt_tokens: expect.any(Number),
      completion_tokens: 8,
      total_tokens: expect.any(Number),
    });
    const events = await readEvents(await post("/v1/completions", { ...req, stream: true }));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1) as TextCompletion[];
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(body.choices[0]!.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
  });

  it("stops at a stop sequence and leaves it out", async () => {
    const res = await post("/v1/completions", {
      model: MODEL,
      prompt: "1, 2, 3, 4, 5,",
      max_tokens: 30,
      temperature: 0,
      stop: [" 8"],
    });
    const body = (await res.json()) as TextCompletion;
    expect(body.choices[0]!.finish_reason).toBe("stop");
    expect(body.choices[0]!.text).toMatch(/6, 7,$/);
  });

  it("embeds a batch of two into unit vectors of 576 floats, also as base64", async () => {
    const res = await post("/v1/embeddings", {
      model: MODEL,
      input: ["Paris is in France", "The cat sleeps"],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as EmbeddingList;
    expect(body.object).toBe("list");
    expect(body.data.map((d) => d.index)).toEqual([0, 1]);
    for (const d of body.data) {
      const v = d.embedding as number[];
      expect(v).toHaveLength(576);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(body.usage.prompt_tokens).toBeGreaterThan(4);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens);

    const b64 = (await (
      await post("/v1/embeddings", { model: MODEL, input: "Paris is in France", encoding_format: "base64" })
    ).json()) as EmbeddingList;
    const raw = Buffer.from(b64.data[0]!.embedding as string, "base64");
    const floats = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    expect(floats).toHaveLength(576);
    expect(floats[0]).toBeCloseTo((body.data[0]!.embedding as number[])[0]!, 5);
  });

  it("runs two requests at once on two sequences", async () => {
    const timed = async () => {
      const res = await post("/v1/completions", {
        model: MODEL,
        prompt: COUNTING,
        max_tokens: 40,
        temperature: 0,
        stream: true,
      });
      const reader = res.body!.getReader();
      let first = 0;
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        first ||= performance.now();
      }
      return { first, last: performance.now() };
    };
    const [a, b] = await Promise.all([timed(), timed()]);
    // Overlap: each one started producing before the other finished.
    expect(a.first).toBeLessThan(b.last);
    expect(b.first).toBeLessThan(a.last);
    expect((await stats()).active).toBe(0);
  });

  it("stops generating when the client goes away mid-stream", async () => {
    const before = await stats();
    const abort = new AbortController();
    const res = await post(
      "/v1/completions",
      { model: MODEL, prompt: COUNTING, max_tokens: 1500, temperature: 0, stream: true },
      abort.signal,
    );
    const reader = res.body!.getReader();
    let events = 0;
    while (events < 6) {
      const { value } = await reader.read();
      events += new TextDecoder().decode(value).split("data: ").length - 1;
    }
    abort.abort();
    await waitFor(async () => (await stats()).cancelled === before.cancelled + 1, {
      what: "the cancellation",
    });
    const atStop = (await stats()).tokens_generated;
    // Nothing more is generated: give a running generation (~50 tokens/s here) time to show.
    await new Promise((r) => setTimeout(r, 500));
    const later = await stats();
    expect(later.tokens_generated).toBe(atStop);
    expect(atStop - before.tokens_generated).toBeLessThan(200);
    expect(later.active).toBe(0);
    const line = engine.logs().find((l) => l.msg === "generation stopped: client went away");
    expect(line).toMatchObject({ model: MODEL, reason: "the client went away" });
  });

  it("stops a non-streamed generation too when its client goes away", async () => {
    const before = await stats();
    const abort = new AbortController();
    const pending = post(
      "/v1/completions",
      { model: MODEL, prompt: COUNTING, max_tokens: 1500, temperature: 0 },
      abort.signal,
    ).catch(() => "aborted");
    await waitFor(async () => (await stats()).tokens_generated > before.tokens_generated + 10, {
      what: "the generation to start",
    });
    abort.abort();
    expect(await pending).toBe("aborted");
    await waitFor(async () => (await stats()).cancelled === before.cancelled + 1, {
      what: "the cancellation",
    });
    const after = await stats();
    expect(after.active).toBe(0);
    expect(after.tokens_generated - before.tokens_generated).toBeLessThan(300);
  });
});

describe("builtin engine: bad requests", () => {
  it("answers an unknown model with 404 model_not_found in OpenAI's error shape", async () => {
    const res = await post("/v1/chat/completions", { model: "nope", messages: question });
    expect(res.status).toBe(404);
    const body = (await res.json()) as Err;
    expect(body.error).toMatchObject({
      code: "model_not_found",
      type: "invalid_request_error",
      param: "model",
    });
    expect(body.error.message).toMatch(/nope/);
    expect((await post("/v1/embeddings", { model: "nope", input: "x" })).status).toBe(404);
  });

  it("answers malformed JSON and invalid fields with 400", async () => {
    const bad = await fetch(`${engine.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...engineAuth, "content-type": "application/json" },
      body: '{"model": "smol", "messages": [',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Err).error.code).toBe("bad_request");
    expect((await post("/v1/chat/completions", { model: MODEL })).status).toBe(400);
    expect(
      (await post("/v1/chat/completions", { model: MODEL, messages: question, temperature: 9 })).status,
    ).toBe(400);
    expect((await post("/v1/chat/completions", { model: MODEL, messages: question, n: 3 })).status).toBe(400);
    expect((await post("/v1/embeddings", { model: MODEL, input: "" })).status).toBe(400);
  });

  it("refuses max_tokens past the context and a prompt longer than the context", async () => {
    const huge = await post("/v1/chat/completions", {
      model: MODEL,
      messages: question,
      max_tokens: 1_000_000,
    });
    expect(huge.status).toBe(400);
    const hugeBody = (await huge.json()) as Err;
    expect(hugeBody.error).toMatchObject({ code: "context_length_exceeded", param: "max_tokens" });
    expect(hugeBody.error.message).toMatch(/2048/);
    const long = "lorem ipsum dolor ".repeat(1500);
    for (const [path, body] of [
      ["/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: long }] }],
      ["/v1/completions", { model: MODEL, prompt: long }],
      ["/v1/embeddings", { model: MODEL, input: long }],
    ] as const) {
      const res = await post(path, body);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as Err).error.code).toBe("context_length_exceeded");
    }
    expect((await stats()).active).toBe(0);
  });
});

describe("builtin engine: unload", () => {
  it("unloads (the model answers 404 and frees its memory), then loads again", async () => {
    const del = await engine.api("DELETE", `/admin/models/${MODEL}`);
    expect(del.status).toBe(200);
    const after = (await engine.api<AdminList>("GET", "/admin/models")).body;
    expect(after.models).toEqual([]);
    expect(after.memory.used_bytes).toBe(0);
    expect((await post("/v1/chat/completions", { model: MODEL, messages: question })).status).toBe(404);
    expect((await engine.api("DELETE", `/admin/models/${MODEL}`)).status).toBe(404);

    const load = await engine.api<ModelView>("POST", "/admin/models", {
      name: MODEL,
      path: testModelPath(),
      context_size: 1024,
    });
    expect(load.status).toBe(201);
    expect(load.body).toMatchObject({ context_size: 1024, parallel: 4, state: "ready", tokens_generated: 0 });
    const res = await post("/v1/chat/completions", { model: MODEL, messages: question, max_tokens: 8 });
    expect(res.status).toBe(200);
  });
});
