import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  http2StreamSink,
  type Logger,
  parseJsonBody,
  proxyRequest,
  type ResponseSink,
  requestIdOf,
  responseSink,
  toErrorReply,
} from "@beta9/http";
import { AGENT_ENERGY_TRAILER, REQUEST_ID_HEADER } from "@beta9/protocol";
import type { FastifyPluginAsync } from "fastify";
import { countStreamedTokens, type EngineEnergy } from "../energy/engine-energy.ts";
import type { InferenceManager } from "../inference/manager.ts";
import type { RequestActivity } from "../inference/request-activity.ts";

/** The OpenAI paths an engine answers through the agent. */
const INFERENCE_PATHS: ReadonlySet<string> = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
]);
/** The largest request body passed to an engine (prompts with images or long documents). */
const BODY_LIMIT = 16 * 1024 * 1024;

export interface OpenAIContext {
  inference: InferenceManager;
  activity: RequestActivity;
  log: Logger;
  energy?: EngineEnergy;
}

/** One OpenAI request for this machine's engines, its body parsed, as either server received it. */
interface OpenAICall {
  path: string;
  body: unknown;
  requestId: string;
  accept: string;
  /** The caller takes trailers (the agent's energy reading goes in one). */
  trailers: boolean;
}

/**
 * The OpenAI-compatible API of this machine's engines, behind the agent's authentication: a client
 * can use one worker directly, as in the fork, while the engines themselves stay on 127.0.0.1.
 * The gateway's requests over the agent channel take a shorter way to the same place:
 * `channelInference`, below.
 */
export const openaiRoutes: FastifyPluginAsync<OpenAIContext> = async (app, ctx) => {
  app.get("/v1/models", async () => ({
    object: "list",
    data: ctx.inference
      .list()
      .filter((s) => s.state() === "ready")
      .map((s) => ({ id: s.model.name, object: "model", created: 0, owned_by: `beta9/${s.engine}` })),
  }));

  for (const path of INFERENCE_PATHS) {
    app.post(path, { bodyLimit: BODY_LIMIT }, async (req, reply) => {
      reply.hijack();
      await serveOpenAI(ctx, responseSink(reply.raw), {
        path,
        body: req.body,
        requestId: req.id,
        accept: String(req.headers.accept ?? "*/*"),
        trailers: req.raw.httpVersionMajor === 2 || /\btrailers\b/i.test(String(req.headers.te ?? "")),
      });
    });
  }
};

/**
 * The gateway's inference requests, answered on the agent channel's HTTP/2 stream itself: no
 * request and response objects of HTTP/2's compatibility layer and no pass through fastify's routing
 * and hooks, which were a third of the agent's CPU per request. The channel needs no authentication
 * (the gateway proved itself when it opened), so what fastify did here is reading the JSON body:
 * done below with the same limits and errors. Returns false for any other stream, which then takes
 * the usual way.
 */
export function channelInference(
  ctx: OpenAIContext,
): (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean {
  return (stream, headers) => {
    const path = headers[":path"];
    if (headers[":method"] !== "POST" || typeof path !== "string" || !INFERENCE_PATHS.has(path)) return false;
    const type = headers["content-type"];
    if (type !== "application/json" && !type?.startsWith("application/json;")) return false;
    // Nothing a stream does may take the agent down: a reset or broken stream ends its request only.
    stream.on("error", () => {});
    const requestId = requestIdOf({ headers });
    const sink = http2StreamSink(stream, { [REQUEST_ID_HEADER]: requestId });
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) chunks.push(chunk);
      else {
        stream.off("data", onData);
        chunks.length = 0;
        refuse(sink, 413, "payload_too_large", "the request body is larger than 16 MiB; send less");
      }
    };
    stream.on("data", onData);
    stream.once("end", () => {
      if (size > BODY_LIMIT) return;
      let body: unknown;
      try {
        body = parseJsonBody(Buffer.concat(chunks, size).toString());
      } catch (err) {
        const { status, body: refusal } = toErrorReply(err);
        return refuse(sink, status, refusal.error.code, refusal.error.message);
      }
      void serveOpenAI(ctx, sink, {
        path,
        body,
        requestId,
        accept: String(headers.accept ?? "*/*"),
        trailers: true,
      });
    });
    return true;
  };
}

/** Our error shape, for what is refused before the request is an OpenAI one. */
function refuse(sink: ResponseSink, status: number, code: string, message: string): void {
  if (sink.headersSent) return;
  sink.head(status, { "content-type": "application/json" });
  sink.end(JSON.stringify({ error: { code, message } }));
}

/**
 * Check the request, pass it to the engine serving its model, and stream the answer back. A failure
 * inside the agent is this request's 500, never the agent's end (what fastify's error handler did).
 */
async function serveOpenAI(ctx: OpenAIContext, sink: ResponseSink, call: OpenAICall): Promise<void> {
  try {
    await serve(ctx, sink, call);
  } catch (err) {
    ctx.log.error({ err, request_id: call.requestId }, "request failed");
    if (!sink.headersSent)
      refuse(sink, 500, "internal", "the agent failed to serve this request; see its log");
    else sink.destroy(err as Error);
  }
}

async function serve(ctx: OpenAIContext, sink: ResponseSink, call: OpenAICall): Promise<void> {
  const { inference, energy } = ctx;
  const body = call.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== "object" || Array.isArray(body))
    return openaiError(sink, 400, "invalid_request_error", "the body must be a JSON object");
  if (typeof body.model !== "string" || !body.model)
    return openaiError(sink, 400, "invalid_request_error", "`model` is required");
  const served = inference.served(body.model);
  // A served model's requests count while their answer is open (answered, failed or abandoned alike);
  // names a caller makes up must not grow the table.
  if (served) sink.on("close", ctx.activity.begin(body.model));
  if (!served || served.state() !== "ready") {
    const known = inference
      .list()
      .filter((s) => s.state() === "ready")
      .map((s) => s.model.name);
    return openaiError(
      sink,
      404,
      "model_not_found",
      `The model \`${body.model}\` is not being served on this machine${known.length ? ` (serving: ${known.join(", ")})` : ""}; start it with POST /inference/start`,
    );
  }
  const metered = energy?.begin(served);
  const started = performance.now();
  let status: number | undefined;
  try {
    await proxyRequest(sink, {
      url: `${served.endpoint}${call.path}`,
      body: JSON.stringify({ ...body, model: served.upstreamModel }),
      headers: {
        "content-type": "application/json",
        accept: call.accept,
        // The gateway's id for the request (or this one's, for a local caller): the engine logs it.
        [REQUEST_ID_HEADER]: call.requestId,
        ...served.authHeaders(),
      },
      onResponse: (s) => {
        status = s;
      },
      ...(metered === undefined
        ? {}
        : {
            onChunk: (chunk: Buffer) => metered.tokens(countStreamedTokens(chunk)),
            // The gateway's channel is HTTP/2, where trailers always work; a local HTTP/1.1 caller
            // gets them when it says it takes them (`TE: trailers`), as the body is then sent chunked.
            ...(call.trailers
              ? {
                  trailer: {
                    name: AGENT_ENERGY_TRAILER,
                    value: async () => {
                      const reading = await metered.end();
                      return reading === undefined ? undefined : JSON.stringify(reading);
                    },
                  },
                }
              : {}),
          }),
    });
  } finally {
    // An answer cut short leaves the meter too, or it would share every later bucket.
    void metered?.end();
    // One line per request, with its id: what the gateway's line and usage row name. Written by the
    // server's logger, so that no request's own child logger is made for it.
    ctx.log.info(
      {
        request_id: call.requestId,
        model: served.model.name,
        engine: served.engine,
        status: status ?? null,
        ms: Math.round(performance.now() - started),
      },
      status === undefined ? "inference request got no answer from the engine" : "inference request answered",
    );
  }
}

/** OpenAI's own error shape, so the openai clients raise their usual exceptions. */
function openaiError(sink: ResponseSink, status: number, code: string, message: string): void {
  sink.head(status, { "content-type": "application/json" });
  sink.end(
    JSON.stringify({
      error: { message, type: status >= 500 ? "server_error" : "invalid_request_error", param: null, code },
    }),
  );
}
