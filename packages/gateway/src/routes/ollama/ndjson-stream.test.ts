import http from "node:http";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { sseData } from "../../router/sse.ts";
import { OllamaError, ollamaErrorHandler } from "./errors.ts";
import { type AnswerOptions, answerEvents, collectAnswer, ollamaLines, sendNdjson } from "./ndjson-stream.ts";
import { expectShape, fixture, fixtureLines, fixtureText, inPieces } from "./testing/fixtures.ts";

const SSE = "text/event-stream";
const chatSse = () => fixtureText("upstream/upstream-chat-stream.sse");
const completionSse = () => fixtureText("upstream/upstream-completion-stream.sse");

/** A clock that moves 10 ms a reading, from 1,000 ms. */
function opts(kind: "chat" | "generate"): AnswerOptions {
  let t = 1000;
  return {
    kind,
    model: "smollm2",
    startedAt: 1000,
    sentAt: 1000,
    now: () => (t += 10),
    clock: () => "2026-01-01T00:00:00.000Z",
  };
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("server-sent events", () => {
  it("yields each event's data, whatever the byte boundaries", async () => {
    const text = chatSse();
    const whole = await all(sseData(inPieces(text, 1 << 20)));
    expect(await all(sseData(inPieces(text, 1)))).toEqual(whole);
    expect(await all(sseData(inPieces(text, 7)))).toEqual(whole);
    expect(whole.at(-1)).toBe("[DONE]");
    expect(await all(sseData(inPieces(": comment\r\ndata: a\r\ndata: b\r\n\r\ndata:c")))).toEqual([
      "a\nb",
      "c",
    ]);
  });
});

describe("an agent's streamed answer → Ollama's", () => {
  it("chat: one line a piece, then a last line with done_reason and the statistics", async () => {
    const o = opts("chat");
    const lines = (await all(ollamaLines(answerEvents(inPieces(chatSse()), SSE, o), o))) as Record<
      string,
      unknown
    >[];
    const [firstReal, lastReal] = fixtureLines("chat-stream.ndjson");
    const parts = lines.slice(0, -1);
    const last = lines.at(-1)!;
    expect(parts.length).toBeGreaterThan(3);
    for (const p of parts) {
      expectShape(p, firstReal!, { deep: ["message"], omit: ["images"] });
      expect(p.done).toBe(false);
    }
    expect(parts.map((p) => (p.message as { content: string }).content).join("")).toBe(
      "The capital of France is Paris.",
    );
    expectShape(last, lastReal!);
    expect(last).toMatchObject({
      model: "smollm2",
      done: true,
      done_reason: "stop",
      message: { role: "assistant", content: "" },
      prompt_eval_count: 17,
      eval_count: 7,
      load_duration: 0,
    });
    // Durations in nanoseconds from the (fake) clock: first piece at 1,010 ms.
    expect(last.prompt_eval_duration).toBe(10_000_000);
    expect(last.total_duration).toBe((last.prompt_eval_duration as number) + (last.eval_duration as number));
  });

  it("chat, not streamed: one object like Ollama's", async () => {
    const o = opts("chat");
    const answer = (await collectAnswer(answerEvents(inPieces(chatSse()), SSE, o), o)) as Record<
      string,
      unknown
    >;
    expectShape(answer, fixture("chat.json"), { deep: ["message"] });
    expect(answer.message).toEqual({ role: "assistant", content: "The capital of France is Paris." });
    expect(answer).toMatchObject({ done: true, done_reason: "stop", eval_count: 7 });
  });

  it("generate (a text completion), streamed and not; hitting max_tokens is done_reason length", async () => {
    const o = opts("generate");
    const lines = (await all(ollamaLines(answerEvents(inPieces(completionSse()), SSE, o), o))) as Record<
      string,
      unknown
    >[];
    const [firstReal, lastReal] = fixtureLines("generate-stream.ndjson");
    for (const p of lines.slice(0, -1)) expectShape(p, firstReal!);
    expectShape(lines.at(-1), lastReal!, { omit: ["context"] });
    expect(lines.at(-1)).toMatchObject({
      done: true,
      done_reason: "length",
      eval_count: 8,
      prompt_eval_count: 5,
    });
    const o2 = opts("generate");
    const answer = (await collectAnswer(answerEvents(inPieces(completionSse()), SSE, o2), o2)) as Record<
      string,
      unknown
    >;
    expectShape(answer, fixture("generate.json"), { omit: ["context"] });
    expect(answer.response).toBe(
      lines
        .slice(0, -1)
        .map((l) => l.response)
        .join(""),
    );
  });

  it("tool calls, streamed as OpenAI deltas, arrive as Ollama's tool_calls with object arguments", async () => {
    const chunk = (delta: unknown, finish: string | null = null) =>
      `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const sse = [
      chunk({ role: "assistant", content: null }),
      chunk({
        tool_calls: [
          {
            index: 0,
            id: "call_1",
            type: "function",
            function: { name: "get_current_weather", arguments: "" },
          },
        ],
      }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"format":"celsius",' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"location":"Paris, FR"}' } }] }),
      chunk({}, "tool_calls"),
      `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 122, completion_tokens: 33 } })}\n\n`,
      "data: [DONE]\n\n",
    ].join("");
    const o = opts("chat");
    const answer = (await collectAnswer(answerEvents(inPieces(sse), SSE, o), o)) as Record<string, unknown>;
    const real = fixture("chat-tools.json");
    expectShape(answer, real, { deep: ["message"] });
    expect((answer.message as { tool_calls: unknown }).tool_calls).toEqual(
      (real.message as { tool_calls: unknown }).tool_calls,
    );
    expect(answer).toMatchObject({ done_reason: "stop", prompt_eval_count: 122, eval_count: 33 });
  });

  it("an engine that answers one JSON object instead of a stream is translated the same", async () => {
    const json = JSON.stringify({
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Paris." }, finish_reason: "stop" }],
      usage: { prompt_tokens: 17, completion_tokens: 3 },
    });
    const o = opts("chat");
    const answer = await collectAnswer(answerEvents(inPieces(json), "application/json", o), o);
    expect(answer).toMatchObject({ message: { content: "Paris." }, eval_count: 3, done: true });
  });

  it("an error event or a cut-off answer fails the stream", async () => {
    const o = opts("chat");
    const errored = `data: ${JSON.stringify({ error: { message: "the machine serving this request went away; retry it", type: "server_error", code: "worker_lost" } })}\n\n`;
    await expect(all(answerEvents(inPieces(errored), SSE, o))).rejects.toMatchObject({
      status: 502,
      message: /went away/,
    });
    async function* cut() {
      yield* inPieces(chatSse().slice(0, 600));
      throw new Error("the machine serving this request went away mid-answer");
    }
    await expect(all(answerEvents(cut(), SSE, o))).rejects.toThrow(/mid-answer/);
  });
});

describe("NDJSON out", () => {
  async function serve(lines: () => AsyncIterable<object>) {
    const app = Fastify();
    app.setErrorHandler(ollamaErrorHandler);
    app.get("/", (_req, reply) => sendNdjson(reply, lines()));
    const res = await app.inject({ method: "GET", url: "/" });
    await app.close();
    return res;
  }

  it("writes one JSON object a line as application/x-ndjson", async () => {
    const res = await serve(async function* () {
      yield { a: 1 };
      yield { done: true };
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    expect(res.body).toBe('{"a":1}\n{"done":true}\n');
  });

  it("an error before the first line is answered with its status; after it, as an error line", async () => {
    const early = await serve(async function* () {
      yield* [];
      throw new OllamaError(503, "busy");
    });
    expect(early.statusCode).toBe(503);
    expect(early.json()).toEqual({ error: "busy" });
    const late = await serve(async function* () {
      yield { a: 1 };
      throw new Error("the machine serving this request went away mid-answer");
    });
    expect(late.statusCode).toBe(200);
    const lines = late.body.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toHaveProperty("error");
  });

  it("reads no faster than the client takes, and stops reading when the client leaves", async () => {
    let made = 0;
    let stopped = false;
    const line = { response: "x".repeat(64 * 1024) };
    const app = Fastify();
    app.get("/", (_req, reply) =>
      sendNdjson(
        reply,
        (async function* () {
          try {
            for (;;) {
              made++;
              yield line;
            }
          } finally {
            stopped = true;
          }
        })(),
      ),
    );
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as AddressInfo;
    const req = http.get({ port, host: "127.0.0.1", path: "/" });
    const res = await new Promise<http.IncomingMessage>((r) => req.once("response", r));
    res.pause();
    await new Promise((r) => setTimeout(r, 300));
    // Socket buffers hold a few MiB; without backpressure this would be thousands of 64 KiB lines.
    const whilePaused = made;
    expect(whilePaused).toBeLessThan(400);
    await new Promise((r) => setTimeout(r, 200));
    expect(made - whilePaused).toBeLessThan(5);
    req.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(true);
    await app.close();
  });
});
