import { waitFor } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import {
  AuthenticationError,
  Beta9Client,
  ConnectionError,
  ConnectionLostError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  StreamError,
} from "../src/index.ts";
import { closedPort } from "./recording-server.ts";
import {
  chatChunk,
  type Handler,
  type StreamingServer,
  sse,
  sseHead,
  startStreamingServer,
} from "./streaming-server.ts";

/*
 * The inference helpers against a canned OpenAI-compatible server (a stand-in for the gateway, so each
 * wire case — a dropped connection, an error event — can be made at will); the same helpers run
 * against the real gateway and model in inference.e2e.test.ts.
 */

const KEY = "b9_inference_key";
let server: StreamingServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(handler: Handler) {
  server = await startStreamingServer(handler);
  return { server, b9: new Beta9Client({ baseUrl: server.url, apiKey: KEY }) };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
};

const openaiError = (code: string | null, message: string, type = "invalid_request_error") => ({
  error: { message, type, param: null, code },
});

const messages = [{ role: "user" as const, content: "Hi" }];

describe("chat, against a canned server standing in for the gateway", () => {
  it("sends the OpenAI body (snake_case, only the options given) and returns content, model, finishReason, usage", async () => {
    const { server, b9 } = await serve(
      json(200, {
        id: "x",
        object: "chat.completion",
        model: "smollm2",
        choices: [{ index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
      }),
    );
    const r = await b9.inference.chat({
      model: "smollm2",
      messages: [{ role: "system", content: "Be brief." }, ...messages],
      maxTokens: 16,
      temperature: 0,
      stop: ["\n"],
      extra: { logit_bias: { "42": -100 } },
    });
    expect(r).toMatchObject({
      content: "Hello!",
      model: "smollm2",
      finishReason: "stop",
      usage: { promptTokens: 5, completionTokens: 2, totalTokens: 7 },
    });
    const [req] = server.requests;
    expect(req).toMatchObject({ method: "POST", url: "/v1/chat/completions" });
    expect(req?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(JSON.parse(req?.body ?? "")).toEqual({
      model: "smollm2",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      max_tokens: 16,
      temperature: 0,
      stop: ["\n"],
      logit_bias: { "42": -100 },
    });
  });

  it("refuses bad arguments before sending anything, naming the field", async () => {
    const { server, b9 } = await serve(json(200, {}));
    await expect(b9.inference.chat({ model: "", messages })).rejects.toThrow(/model must be the name/);
    await expect(b9.inference.chat({ model: "m", messages: [] })).rejects.toThrow(/non-empty array/);
    await expect(
      b9.inference.chat({ model: "m", messages: [{ role: "bot" as "user", content: "x" }] }),
    ).rejects.toThrow(/messages\[0\]\.role is "bot"/);
    await expect(b9.inference.chat({ model: "m", messages, temperature: 3 })).rejects.toThrow(
      /temperature must be a number from 0 to 2/,
    );
    await expect(b9.inference.chat({ model: "m", messages, maxTokens: 0 })).rejects.toThrow(/maxTokens/);
    expect(() => b9.inference.chatStream({ model: "m", messages: "hi" as never })).toThrow(TypeError);
    expect(server.requests).toHaveLength(0);
  });

  it("raises the SDK's error classes with the server's code and message", async () => {
    const replies: Record<string, Handler> = {
      ghost: json(404, openaiError("model_not_found", "The model `ghost` is not served by any machine")),
      busy: json(429, openaiError("rate_limited", "over 60 requests a minute", "rate_limit_error"), {
        "retry-after": "12",
      }),
      denied: json(403, openaiError("scope_missing", "this API key lacks the 'inference' scope")),
      nocode: json(401, openaiError(null, "bad key", "authentication_error")),
    };
    const { b9 } = await serve((req, res) => replies[JSON.parse(req.body).model]?.(req, res));
    const ask = (model: string) => b9.inference.chat({ model, messages }).catch((e: unknown) => e);
    expect(await ask("ghost")).toSatisfy(
      (e) => e instanceof NotFoundError && e.code === "model_not_found" && e.message.includes("ghost"),
    );
    expect(await ask("busy")).toSatisfy((e) => e instanceof RateLimitError && e.retryAfterSeconds === 12);
    expect(await ask("denied")).toSatisfy(
      (e) => e instanceof PermissionDeniedError && e.code === "scope_missing",
    );
    // OpenAI's errors may carry a null code: the type stands in for it.
    expect(await ask("nocode")).toSatisfy(
      (e) => e instanceof AuthenticationError && e.code === "authentication_error" && e.message === "bad key",
    );
  });

  it("says what to check when nothing listens at the address", async () => {
    const port = await closedPort();
    const b9 = new Beta9Client({ baseUrl: `http://127.0.0.1:${port}`, apiKey: KEY });
    const stream = b9.inference.chatStream({ model: "m", messages });
    const error = await stream.finalResult().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toBe(
      `cannot reach the gateway at http://127.0.0.1:${port} (connection refused); check the gateway URL and that the gateway is running`,
    );
  });
});

describe("chat streams, against a canned server standing in for the gateway", () => {
  it("yields chunks as they come, asks for the usage, and keeps the whole answer", async () => {
    const { server, b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, { ...(chatChunk("") as object), choices: [{ index: 0, delta: { role: "assistant" } }] });
      sse(res, chatChunk("Hel"));
      sse(res, chatChunk("lo"));
      sse(res, chatChunk("", "stop"));
      sse(res, {
        model: "m",
        choices: [],
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      });
      sse(res, "[DONE]");
      res.end();
    });
    const stream = b9.inference.chat({ model: "m", messages, stream: true, maxTokens: 8 });
    const pieces: string[] = [];
    for await (const chunk of stream) pieces.push(chunk.content);
    expect(pieces).toEqual(["", "Hel", "lo", "", ""]);
    expect(stream.ended).toBe(true);
    expect(stream.result()).toEqual({
      content: "Hello",
      model: "m",
      finishReason: "stop",
      usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 },
      raw: null,
    });
    const req = server.requests[0];
    expect(req?.headers.accept).toBe("text/event-stream");
    expect(JSON.parse(req?.body ?? "")).toEqual({
      model: "m",
      messages,
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it("abort() closes the request, so the server stops generating, and the loop ends without an error", async () => {
    const { server, b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("first"));
      // then holds the answer open, as a model still generating does
    });
    const stream = b9.inference.chatStream({ model: "m", messages });
    const seen: string[] = [];
    for await (const chunk of stream) {
      seen.push(chunk.content);
      stream.abort();
    }
    expect(seen).toEqual(["first"]);
    expect(stream.aborted).toBe(true);
    expect(stream.ended).toBe(false);
    await server.requests[0]?.clientLeft;
    expect(server.requests[0]?.left).toBe(true);
  });

  it("leaving the loop early closes the request too", async () => {
    const { server, b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("a"));
      sse(res, chatChunk("b"));
    });
    const stream = b9.inference.chatStream({ model: "m", messages });
    for await (const chunk of stream) {
      if (chunk.content === "a") break;
    }
    await server.requests[0]?.clientLeft;
    expect(server.requests[0]?.left).toBe(true);
    expect(stream.aborted).toBe(false); // left, not aborted
  });

  it("abort() before the answer begins stops the waiting, quietly", async () => {
    const { server, b9 } = await serve(() => {
      // never answers: a cold start that takes long
    });
    const stream = b9.inference.chatStream({ model: "m", messages });
    const reading = stream.finalResult();
    await waitFor(() => server.requests.length > 0, { what: "the request to arrive" });
    stream.abort();
    expect((await reading).content).toBe("");
    await server.requests[0]?.clientLeft;
  });

  it("the caller's AbortSignal rejects with its reason and closes the request", async () => {
    const { server, b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("first"));
    });
    const controller = new AbortController();
    const stream = b9.inference.chatStream({ model: "m", messages }, { signal: controller.signal });
    const error = await (async () => {
      for await (const _ of stream) controller.abort(new Error("user pressed stop"));
    })().catch((e: unknown) => e);
    expect((error as Error).message).toBe("user pressed stop");
    await server.requests[0]?.clientLeft;
  });

  it("an error event (the machine went away) is thrown as a StreamError with its code", async () => {
    const { b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("par"));
      sse(res, {
        error: {
          message: "the machine serving this request went away; retry it",
          type: "server_error",
          code: "worker_lost",
        },
      });
      res.end();
    });
    const stream = b9.inference.chatStream({ model: "m", messages });
    const error = await stream.finalResult().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamError);
    expect(error).toMatchObject({
      code: "worker_lost",
      message: "the machine serving this request went away; retry it",
    });
    expect(stream.result().content).toBe("par");
  });

  it("a stream that ends without [DONE] is not taken for a whole answer", async () => {
    const { b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("half"));
      res.end();
    });
    const error = await b9.inference
      .chatStream({ model: "m", messages })
      .finalResult()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "StreamError", code: "stream_incomplete" });
  });

  it("a connection cut mid-answer is a ConnectionLostError that says to retry", async () => {
    const { b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("half"));
      setImmediate(() => res.socket?.destroy());
    });
    const error = await b9.inference
      .chatStream({ model: "m", messages })
      .finalResult()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect((error as Error).message).toMatch(/closed before the answer ended .*retry the request/);
  });

  it("an error status before the stream begins is thrown as the usual ApiError", async () => {
    const { b9 } = await serve(json(404, openaiError("model_not_found", "no such model")));
    const error = await b9.inference
      .chatStream({ model: "m", messages })
      .finalResult()
      .catch((e: unknown) => e);
    expect(error).toSatisfy((e) => e instanceof NotFoundError && e.code === "model_not_found");
  });

  it("the timeout covers the wait for the answer to begin, not a long answer", async () => {
    const { b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, chatChunk("slow "));
      // A fixture that generates slowly: the next piece comes after the timeout has passed.
      setTimeout(() => {
        sse(res, chatChunk("answer", "stop"));
        sse(res, "[DONE]");
        res.end();
      }, 300);
    });
    const r = await b9.inference.chatStream({ model: "m", messages }, { timeoutMs: 100 }).finalResult();
    expect(r.content).toBe("slow answer");
  });

  it("a stream can be read once", async () => {
    const { b9 } = await serve((_req, res) => {
      sseHead(res);
      sse(res, "[DONE]");
      res.end();
    });
    const stream = b9.inference.chatStream({ model: "m", messages });
    await stream.finalResult();
    await expect(stream.finalResult()).rejects.toThrow(/read only once/);
  });
});

describe("generate, embed, listModels, against a canned server standing in for the gateway", () => {
  it("generate posts a prompt to /v1/completions and streams text chunks", async () => {
    const { server, b9 } = await serve((req, res) => {
      if (JSON.parse(req.body).stream) {
        sseHead(res);
        sse(res, { model: "m", choices: [{ index: 0, text: "upon", finish_reason: null }] });
        sse(res, { model: "m", choices: [{ index: 0, text: " a time", finish_reason: "length" }] });
        sse(res, "[DONE]");
        return void res.end();
      }
      void json(200, { model: "m", choices: [{ index: 0, text: " upon a time", finish_reason: "length" }] })(
        req,
        res,
      );
    });
    const whole = await b9.inference.generate({ model: "m", prompt: "Once", maxTokens: 3 });
    expect(whole).toMatchObject({ content: " upon a time", finishReason: "length", usage: null });
    const streamed = await b9.inference.generate({ model: "m", prompt: "Once", stream: true }).finalResult();
    expect(streamed).toMatchObject({ content: "upon a time", finishReason: "length" });
    expect(server.requests.map((r) => r.url)).toEqual(["/v1/completions", "/v1/completions"]);
    expect(JSON.parse(server.requests[0]?.body ?? "")).toEqual({ model: "m", prompt: "Once", max_tokens: 3 });
  });

  it("embed returns the first vector and all of them in input order", async () => {
    const { server, b9 } = await serve(
      json(200, {
        object: "list",
        model: "m",
        data: [
          { object: "embedding", index: 1, embedding: [0, 1] },
          { object: "embedding", index: 0, embedding: [1, 0] },
        ],
        usage: { prompt_tokens: 4, total_tokens: 4 },
      }),
    );
    const r = await b9.inference.embed({ model: "m", input: ["a", "b"] });
    expect(r).toEqual({
      embedding: [1, 0],
      embeddings: [
        [1, 0],
        [0, 1],
      ],
      model: "m",
      usage: { promptTokens: 4, totalTokens: 4 },
    });
    expect(JSON.parse(server.requests[0]?.body ?? "")).toEqual({
      model: "m",
      input: ["a", "b"],
      encoding_format: "float",
    });
    await expect(b9.inference.embed({ model: "m", input: [] })).rejects.toThrow(/non-empty array of strings/);
  });

  it("listModels reads GET /v1/models", async () => {
    const { server, b9 } = await serve(
      json(200, {
        object: "list",
        data: [{ id: "smollm2", object: "model", created: 0, owned_by: "beta9" }],
      }),
    );
    expect(await b9.inference.listModels()).toEqual([{ id: "smollm2", ownedBy: "beta9" }]);
    expect(server.requests[0]).toMatchObject({ method: "GET", url: "/v1/models" });
  });
});

describe("deployments.pull, against a canned server standing in for the gateway", () => {
  it("streams NDJSON progress to the success line", async () => {
    const { server, b9 } = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write('{"status":"downloading","completed":0,"total":100}\n{"status":"downloading",');
      res.write('"completed":100,"total":100}\n{"status":"success"}\n');
      res.end();
    });
    const lines = [];
    for await (const p of b9.deployments.pull("llama3.2:1b")) lines.push(p);
    expect(lines.map((p) => [p.status, p.completed])).toEqual([
      ["downloading", 0],
      ["downloading", 100],
      ["success", undefined],
    ]);
    expect(server.requests[0]).toMatchObject({
      method: "POST",
      url: "/api/v1/deployments/llama3.2%3A1b/pull",
    });
    expect(server.requests[0]?.headers.accept).toBe("application/x-ndjson");
  });

  it("throws the machine's error line as a StreamError with its code", async () => {
    const { b9 } = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(
        '{"status":"error","error":{"code":"checksum_mismatch","message":"the file\'s sha256 differs"}}\n',
      );
    });
    const error = await (async () => {
      for await (const _ of b9.deployments.pull("m"));
    })().catch((e: unknown) => e);
    expect(error).toSatisfy((e) => e instanceof StreamError && e.code === "checksum_mismatch");
  });
});
