import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createLogger } from "@beta9/http";
import { afterEach, describe, expect, it } from "vitest";
import type { InferenceManager } from "../inference/manager.ts";
import { RequestActivity } from "../inference/request-activity.ts";
import { channelInference, type OpenAIContext, openaiRoutes } from "./openai-routes.ts";
import { ControlServer } from "./server.ts";

/**
 * The gateway's inference requests on the agent channel take their own way (the HTTP/2 stream
 * itself, not fastify): the same answers and errors as the routes, and nothing a gateway's stream
 * does takes the agent down. A real node:http server plays the engine; the channel is a real
 * HTTP/2 session over a socket, as the gateway opens it.
 */

interface EngineCall {
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function engine(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, call: EngineCall) => void,
) {
  const calls: EngineCall[] = [];
  const closed: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const call = { body: JSON.parse(Buffer.concat(chunks).toString()), headers: req.headers };
      calls.push(call);
      res.on("close", () => closed.push(String(call.body.model)));
      handler(req, res, call);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls, closed };
}

/** An agent's control server with one model served as `tiny` by the engine at `endpoint`. */
async function agentWithChannel(endpoint: string) {
  const log = createLogger({ name: "test", level: "silent" });
  const served = {
    model: { name: "tiny" },
    engine: "llamacpp",
    endpoint,
    upstreamModel: "tiny-upstream",
    state: () => "ready",
    authHeaders: () => ({ authorization: "Bearer engine-key" }),
  };
  // A model whose engine's credentials cannot be read: a failure inside the agent, not the engine's.
  const broken = {
    ...served,
    model: { name: "broken" },
    authHeaders: () => {
      throw new Error("the engine's key file is unreadable");
    },
  };
  const inference = {
    served: (name: string) => (name === "tiny" ? served : name === "broken" ? broken : undefined),
    list: () => [served],
  } as unknown as InferenceManager;
  const ctx: OpenAIContext = { inference, activity: new RequestActivity(), log };
  const control = new ControlServer(log);
  control.app.get("/health", async () => ({ status: "ok" }));
  await control.app.register(openaiRoutes, ctx);
  control.onChannelStream(channelInference(ctx));
  await control.app.ready();
  // The agent's end of a channel: a socket it dialled, served as HTTP/2 (here, a loopback pair).
  const tcp = http.createServer();
  tcp.on("connection", (socket) => control.serveChannel(socket));
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  const session = http2.connect(`http://127.0.0.1:${(tcp.address() as AddressInfo).port}`);
  session.on("error", () => {});
  cleanups.push(async () => {
    session.destroy();
    tcp.close();
    await control.close();
  });
  return { session, ctx, control };
}

interface Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
  trailers: http2.IncomingHttpHeaders;
}

function ask(
  session: http2.ClientHttp2Session,
  path: string,
  body: string | Buffer,
  headers: http2.OutgoingHttpHeaders = { "content-type": "application/json" },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, ...headers });
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      status = Number(h[":status"]);
      head = h;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ status, headers: head, body: Buffer.concat(chunks).toString(), trailers }));
    req.on("error", reject);
    req.end(body);
  });
}

describe("inference requests on the agent channel", () => {
  it("reach the engine with the served name, and come back with the request's id", async () => {
    const e = await engine((_req, res, call) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ id: "x", model: call.body.model, choices: [{ message: { content: "Paris" } }] }),
      );
    });
    const { session, ctx } = await agentWithChannel(e.url);
    const a = await ask(
      session,
      "/v1/chat/completions",
      JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "capital of France?" }] }),
      { "content-type": "application/json", "x-request-id": "req-123" },
    );
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body).choices[0].message.content).toBe("Paris");
    expect(a.headers["x-request-id"]).toBe("req-123");
    expect(e.calls).toHaveLength(1);
    expect(e.calls[0]!.body.model).toBe("tiny-upstream");
    expect(e.calls[0]!.body.messages).toEqual([{ role: "user", content: "capital of France?" }]);
    expect(e.calls[0]!.headers["x-request-id"]).toBe("req-123");
    expect(e.calls[0]!.headers.authorization).toBe("Bearer engine-key");
    // Counted as the dashboard and the young generation's sizing read it.
    await new Promise((r) => setTimeout(r, 20));
    expect(ctx.activity.get("tiny")).toMatchObject({ running: 0, served: 1 });
  });

  it("streams an event stream chunk by chunk", async () => {
    let release: () => void = () => {};
    const e = await engine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"delta":{"content":"Pa"}}]}\n\n');
      release = () => res.end('data: {"choices":[{"delta":{"content":"ris"}}]}\n\ndata: [DONE]\n\n');
    });
    const { session } = await agentWithChannel(e.url);
    const req = session.request({
      ":method": "POST",
      ":path": "/v1/chat/completions",
      "content-type": "application/json",
    });
    req.end(JSON.stringify({ model: "tiny", stream: true, messages: [] }));
    const first = await new Promise<string>((r) => req.once("data", (c: Buffer) => r(c.toString())));
    // The first event arrived while the engine still holds the rest.
    expect(first).toContain('"Pa"');
    const rest: Buffer[] = [];
    req.on("data", (c: Buffer) => rest.push(c));
    const ended = new Promise((r) => req.on("end", r));
    release();
    await ended;
    expect(Buffer.concat(rest).toString()).toContain("data: [DONE]");
  });

  it("refuses bodies that are not JSON, nest too deep or are too large, in our error shape", async () => {
    const e = await engine((_req, res) => res.end("{}"));
    const { session } = await agentWithChannel(e.url);
    const bad = await ask(session, "/v1/chat/completions", "{not json");
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe("bad_request");
    const deep = await ask(session, "/v1/completions", `${"[".repeat(200)}${"]".repeat(200)}`);
    expect(deep.status).toBe(400);
    expect(JSON.parse(deep.body).error.message).toMatch(/deeper than 100 levels/);
    const big = await ask(session, "/v1/embeddings", Buffer.alloc(17 * 1024 * 1024, 0x20));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).error.code).toBe("payload_too_large");
    const array = await ask(session, "/v1/chat/completions", "[1]");
    expect(array.status).toBe(400);
    expect(JSON.parse(array.body).error).toMatchObject({ type: "invalid_request_error" });
    const unknown = await ask(session, "/v1/chat/completions", JSON.stringify({ model: "Tiny2" }));
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error).toMatchObject({ code: "model_not_found" });
    expect(JSON.parse(unknown.body).error.message).toContain("serving: tiny");
    expect(e.calls).toHaveLength(0);
  });

  it("stops the engine's answer when the gateway resets the stream, and keeps serving", async () => {
    const e = await engine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"delta":{"content":"x"}}]}\n\n');
      // …and never ends on its own.
    });
    const { session } = await agentWithChannel(e.url);
    const req = session.request({
      ":method": "POST",
      ":path": "/v1/chat/completions",
      "content-type": "application/json",
    });
    req.end(JSON.stringify({ model: "tiny", stream: true }));
    await new Promise((r) => req.once("data", r));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await expect.poll(() => e.closed, { timeout: 5_000 }).toEqual(["tiny-upstream"]);
    // A stream reset while its body is still coming in is dropped too.
    const half = session.request({
      ":method": "POST",
      ":path": "/v1/chat/completions",
      "content-type": "application/json",
    });
    half.on("error", () => {});
    half.write('{"model": "ti');
    half.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    const after = await ask(session, "/v1/chat/completions", "{oops");
    expect(after.status).toBe(400);
    expect(e.calls).toHaveLength(1);
  });

  it("answers a failure inside the agent with a 500, and keeps serving", async () => {
    const e = await engine((_req, res) => res.end("{}"));
    const { session, control } = await agentWithChannel(e.url);
    const failed = await ask(session, "/v1/chat/completions", JSON.stringify({ model: "broken" }));
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body).error.code).toBe("internal");
    const ok = await ask(session, "/v1/chat/completions", JSON.stringify({ model: "tiny" }));
    expect(ok.status).toBe(200);
    // The same for a local HTTP/1.1 caller, who takes the routes.
    const [bound] = await control.listen([{ host: "127.0.0.1", port: 0 }]);
    const local = await fetch(`http://${bound}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "broken" }),
    });
    expect(local.status).toBe(500);
    expect(((await local.json()) as { error: { code: string } }).error.code).toBe("internal");
  });

  it("leaves other requests to the routes", async () => {
    const e = await engine((_req, res) => res.end("{}"));
    const { session } = await agentWithChannel(e.url);
    const health = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ":method": "GET", ":path": "/health" });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.resume();
      req.end();
    });
    expect(health).toBe(200);
    // Not JSON by its type: fastify's parsers take it, as before.
    const text = await ask(session, "/v1/chat/completions", "hello", { "content-type": "text/plain" });
    expect(text.status).toBe(400);
    expect(JSON.parse(text.body).error.message).toBe("the body must be a JSON object");
    expect(e.calls).toHaveLength(0);
  });
});
