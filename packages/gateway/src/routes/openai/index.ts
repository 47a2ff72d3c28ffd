import { passOnHeaders } from "@beta9/http";
import { canonicalModelName } from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { WorkspaceModels } from "../../auth/model-access.ts";
import type { GatewayContext } from "../../context.ts";
import { clientGone } from "../../http/client-gone.ts";
import { limitCode, limitMessage } from "../../limits/key-limits.ts";
import { BODY_LIMITS, type BodyBudget, callerOf, inferenceBody } from "../../limits/request-body.ts";
import { CLIENT_LEFT, type Metering } from "../../metering/metering.ts";
import { estimateNeed } from "../../metering/token-estimate.ts";
import { requestModel } from "../../router/request.ts";
import type { Router } from "../../router/router.ts";
import { RecentDeployments } from "../../scheduler/recent-deployments.ts";
import type { DeploymentSpec, ReplicaManager } from "../../scheduler/replicas.ts";
import { relayBytes, relayEvents } from "./relay.ts";

/**
 * The OpenAI-compatible API at the gateway: each request goes to a machine serving its model, over
 * that machine's agent channel. A request that has not started is tried on another machine when its
 * machine fails. Each request is admitted under its key's limits first and metered to its end.
 */
export interface InferenceRouteContext extends GatewayContext {
  router: Router;
  metering: Metering;
  replicas: ReplicaManager;
  /** Which models the caller's workspace may use. */
  models: WorkspaceModels;
  /** The caller's workspace's deployment of that model, if there is one. */
  deployments: (workspaceId: string, model: string) => Promise<DeploymentSpec | undefined>;
  /** Request bodies held at once, gateway-wide (limits/request-body.ts). */
  bodyBudget: BodyBudget;
  /** How long a client may leave its answer untaken before the generation is stopped (0: forever). */
  clientStallMs: number;
}

export const openaiRoutes: FastifyPluginAsync<InferenceRouteContext> = async (app, ctx) => {
  const recent = new RecentDeployments(ctx.deployments);
  app.get("/v1/models", async (req) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return {
      object: "list",
      data: (await ctx.models.names(caller)).map((id) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "beta9",
      })),
    };
  });

  for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) {
    const limit = path === "/v1/embeddings" ? BODY_LIMITS.embeddings : BODY_LIMITS.generation;
    app.post(path, inferenceBody(ctx.auth, ctx.bodyBudget, limit), async (req, reply) => {
      const caller = callerOf(req);
      const body = req.body as Record<string, unknown> | undefined;
      if (!body || typeof body !== "object" || Array.isArray(body)) {
        return openaiError(
          reply,
          400,
          "invalid_request_error",
          "bad_request",
          "the body must be a JSON object",
        );
      }
      if (typeof body.model !== "string" || !body.model) {
        return openaiError(reply, 400, "invalid_request_error", "bad_request", "`model` is required");
      }
      // Names are case-insensitive: "Victim" is the deployment "victim", never a second model.
      const model = canonicalModelName(body.model);
      // The meter records the request's usage and its metrics, whatever way it ends.
      const meter = ctx.metering.start(caller, model);

      const admission = ctx.metering.admit(caller, meter, estimateNeed(body, path));
      if (!admission.ok) {
        meter.finish(429);
        reply.header("retry-after", String(admission.retryAfterS));
        return openaiError(reply, 429, "rate_limit_error", limitCode(admission), limitMessage(admission));
      }

      // Scale from zero: a deployed model with no replica now is loaded first (bounded wait). With one
      // serving, the deployment only guides scaling up, which may act on what was read seconds ago.
      // A deployment's requests go only to the replicas the gateway placed for it (scheduler/placements.ts).
      let deployment = await recent.get(caller.workspaceId, model);
      let allow = ctx.replicas.allowFor(model, deployment);
      const serving = ctx.router.pick(model, undefined, allow) !== undefined;
      if (!serving) {
        deployment = await ctx.deployments(caller.workspaceId, model);
        allow = ctx.replicas.allowFor(model, deployment);
      }
      // Another workspace's model is not there for this one (auth/model-access.ts).
      if (!deployment && !(await ctx.models.shared(caller, model, { maxAgeMs: serving ? 5_000 : 0 }))) {
        meter.finish(404);
        return modelNotFound(reply, model, await ctx.models.names(caller));
      }
      meter.known();
      if (deployment && !serving) {
        try {
          await ctx.replicas.ensure(deployment);
        } catch (err) {
          meter.finish(503);
          reply.header("retry-after", "10");
          return openaiError(reply, 503, "server_error", "unavailable", (err as Error).message);
        }
      }

      // Streamed answers carry their token counts only when asked: always ask the machine, and hand
      // the usage chunk on only to a client that asked for it.
      const streamed = body.stream === true && path !== "/v1/embeddings";
      if (streamed) meter.streamed();
      const options = isObject(body.stream_options) ? body.stream_options : {};
      const clientWantsUsage = options.include_usage === true;
      const upstream = streamed
        ? { ...body, model, stream_options: { ...options, include_usage: true } }
        : { ...body, model };

      const client = clientGone(reply, ctx.clientStallMs);
      try {
        const result = await requestModel(
          ctx.router,
          model,
          {
            path,
            body: JSON.stringify(upstream),
            headers: { "content-type": "application/json", accept: String(req.headers.accept ?? "*/*") },
            headersTimeoutMs: 300_000,
            signal: client.signal,
          },
          {
            allow,
            place: deployment ? () => ctx.replicas.ensure(deployment) : undefined,
            onAttempt: (machineId) => {
              meter.sent();
              ctx.replicas.touch(machineId, model);
              if (deployment) ctx.replicas.scaleUp(deployment, ctx.router.outstanding(machineId));
            },
            onRetry: (machineId, err) =>
              ctx.log.warn(
                { machine_id: machineId, model, err: err.message },
                "machine failed before answering; trying another",
              ),
          },
        );
        if (result.kind === "answered") {
          const res = result.response;
          meter.machine(res.machineId);
          const onFirstByte = () => meter.firstByte();
          const pass = passOnHeaders(res.headers as Record<string, string | string[] | undefined>);
          reply.hijack();
          reply.raw.writeHead(res.status, pass.headers);
          if (pass.sse) {
            // Headers at once for a stream; a whole answer's ride with its bytes (one write).
            reply.raw.flushHeaders?.();
            await relayEvents(reply.raw, res, {
              meter,
              onFirstByte,
              clientWantsUsage,
              signal: client.signal,
            });
          } else {
            await relayBytes(reply.raw, res, { meter, onFirstByte, signal: client.signal });
          }
          return;
        }
        if (client.signal.aborted) {
          // The client left before any machine answered: nobody to answer.
          meter.finish(CLIENT_LEFT);
          reply.hijack();
          if (!reply.raw.destroyed) reply.raw.destroy();
          return;
        }
        if (result.kind === "not_served") {
          meter.finish(404);
          return modelNotFound(reply, model, await ctx.models.names(caller));
        }
        meter.finish(503);
        reply.header("retry-after", "2");
        return openaiError(
          reply,
          503,
          "server_error",
          "unavailable",
          `every machine serving ${model} failed to answer (${result.error.message}); retry shortly`,
        );
      } finally {
        client.dispose();
        // Whatever went wrong above was not the client's answer: still one request, metered.
        if (!meter.finished) meter.finish(client.signal.aborted ? CLIENT_LEFT : 500);
      }
    });
  }
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** OpenAI's 404 for a model the caller's workspace does not have, naming the ones it has. */
function modelNotFound(reply: FastifyReply, model: string, known: readonly string[]) {
  return openaiError(
    reply,
    404,
    "invalid_request_error",
    "model_not_found",
    `The model \`${model}\` is not served by any machine for this workspace${known.length ? ` (its models: ${known.join(", ")})` : ""}; deploy it with \`b9 model deploy ${model} --source SRC\``,
  );
}

/** OpenAI's error shape (with our stable code), so openai clients raise their usual exceptions. */
function openaiError(reply: FastifyReply, status: number, type: string, code: string, message: string) {
  return reply.status(status).send({ error: { message, type, param: null, code } });
}
