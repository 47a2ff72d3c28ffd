import { passOnHeaders } from "@beta9/http";
import { AI_GENERATED_HEADER, canonicalModelName, OpenAIRequest } from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { GatewayContext } from "../../context.ts";
import { clientGone } from "../../http/client-gone.ts";
import { bodyCheck } from "../../inference/body-check.ts";
import { InferenceError } from "../../inference/errors.ts";
import type { InferencePipeline, UpstreamPath } from "../../inference/pipeline.ts";
import { BODY_LIMITS, type BodyBudget, callerOf, inferenceBody } from "../../limits/request-body.ts";
import { CLIENT_LEFT, type RequestMeter } from "../../metering/metering.ts";
import { FOOTPRINT_TRAILER, relayBytes, relayEvents } from "./relay.ts";

/**
 * The OpenAI-compatible API at the gateway: each request goes through the inference pipeline
 * (inference/pipeline.ts: limits, the model's lookup, a cold start, a machine, retries, metering);
 * here its body is checked and its answer relayed as the machine sends it.
 */
export interface InferenceRouteContext extends GatewayContext {
  inference: InferencePipeline;
  /** Request bodies held at once, gateway-wide (limits/request-body.ts). */
  bodyBudget: BodyBudget;
  /** How long a client may leave its answer untaken before the generation is stopped (0: forever). */
  clientStallMs: number;
}

const checkRequest = bodyCheck(OpenAIRequest, (name) => `\`${name}\``);
const PATHS: readonly UpstreamPath[] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

export const openaiRoutes: FastifyPluginAsync<InferenceRouteContext> = async (app, ctx) => {
  app.get("/v1/models", async (req) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return {
      object: "list",
      data: (await ctx.inference.models.names(caller)).map((id) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "beta9",
      })),
    };
  });

  for (const path of PATHS) {
    const limit = path === "/v1/embeddings" ? BODY_LIMITS.embeddings : BODY_LIMITS.generation;
    app.post(path, inferenceBody(ctx.auth, ctx.bodyBudget, limit), async (req, reply) => {
      const caller = callerOf(req);
      // The fields read here have their types checked at the edge; the rest go to the engine as sent.
      const refusal = checkRequest(req.body);
      if (refusal) return openaiError(reply, 400, "invalid_request_error", "bad_request", refusal);
      const body = req.body as OpenAIRequest;
      // Names are case-insensitive: "Victim" is the deployment "victim", never a second model.
      const model = canonicalModelName(body.model);
      // Streamed answers carry their token counts only when asked: always ask the machine, and hand
      // the usage chunk on only to a client that asked for it.
      const streamed = body.stream === true && path !== "/v1/embeddings";
      const options = body.stream_options ?? {};
      const clientWantsUsage = options.include_usage === true;
      const upstream = streamed ? { ...body, stream_options: { ...options, include_usage: true } } : body;

      const client = clientGone(reply, ctx.clientStallMs);
      let meter: RequestMeter | undefined;
      try {
        const answered = await ctx.inference.dispatch({
          caller,
          asked: model,
          names: [model],
          path,
          body: upstream,
          accept: String(req.headers.accept ?? "*/*"),
          streamed,
          signal: client.signal,
          requestId: req.id,
          log: req.log,
        });
        meter = answered.meter;
        const res = answered.response;
        // Art. 50 transparency: what a machine answered is marked AI-generated, machine-readably.
        reply.raw.setHeader(AI_GENERATED_HEADER, "true");
        const onFirstByte = () => answered.meter.firstByte();
        const pass = passOnHeaders(res.headers as Record<string, string | string[] | undefined>);
        reply.hijack();
        if (pass.sse) {
          // Headers at once for a stream (its footprint comes in trailers); a whole answer's ride with
          // its bytes (one write), its footprint among them.
          reply.raw.writeHead(res.status, { ...pass.headers, trailer: FOOTPRINT_TRAILER });
          reply.raw.flushHeaders?.();
          await relayEvents(reply.raw, res, { meter, onFirstByte, clientWantsUsage, signal: client.signal });
        } else {
          const head = { status: res.status, headers: pass.headers };
          await relayBytes(reply.raw, res, { meter, onFirstByte, signal: client.signal, head });
        }
        return;
      } catch (err) {
        if (!(err instanceof InferenceError)) throw err;
        if (err.failure === "client_left") {
          // The client left before any machine answered: nobody to answer.
          reply.hijack();
          if (!reply.raw.destroyed) reply.raw.destroy();
          return;
        }
        if (err.retryAfterS !== undefined) reply.header("retry-after", String(err.retryAfterS));
        return openaiError(reply, err.status, ERROR_TYPES[err.failure], err.code, openaiMessage(err));
      } finally {
        client.dispose();
        // Whatever went wrong while relaying was not the client's answer: still one request, metered.
        if (meter && !meter.finished) meter.finish(client.signal.aborted ? CLIENT_LEFT : 500);
      }
    });
  }
};

const ERROR_TYPES: Record<InferenceError["failure"], string> = {
  rate_limited: "rate_limit_error",
  model_not_found: "invalid_request_error",
  unavailable: "server_error",
  client_left: "invalid_request_error",
  residency: "permission_error",
};

/** OpenAI's 404 for a model the caller's workspace does not have names the ones it has. */
function openaiMessage(err: InferenceError): string {
  if (err.failure !== "model_not_found") return err.message;
  const known = err.known.length ? ` (its models: ${err.known.join(", ")})` : "";
  return `The model \`${err.model}\` is not served by any machine for this workspace${known}; deploy it with \`b9 model deploy ${err.model} --source SRC\``;
}

/** OpenAI's error shape (with our stable code), so openai clients raise their usual exceptions. */
function openaiError(reply: FastifyReply, status: number, type: string, code: string, message: string) {
  return reply.status(status).send({ error: { message, type, param: null, code } });
}
