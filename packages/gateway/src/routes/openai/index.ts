import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { GatewayContext } from "../../context.ts";
import type { InferenceMetrics } from "../../http/metrics.ts";
import { forwardToAgent } from "../../router/forward.ts";
import type { Router } from "../../router/router.ts";
import type { DeploymentSpec, ReplicaManager } from "../../scheduler/replicas.ts";

const MAX_ATTEMPTS = 3;

/**
 * The OpenAI-compatible API at the gateway: each request goes to a machine serving its model, over
 * that machine's agent channel. A request that has not started is tried on another machine when its
 * machine fails.
 */
export interface InferenceRouteContext extends GatewayContext {
  router: Router;
  metrics: InferenceMetrics;
  replicas: ReplicaManager;
  /** The caller's workspace's deployment of that model, if there is one. */
  deployments: (workspaceId: string, model: string) => Promise<DeploymentSpec | undefined>;
}

export const openaiRoutes: FastifyPluginAsync<InferenceRouteContext> = async (app, ctx) => {
  app.get("/v1/models", async (req) => {
    await ctx.auth.authenticate(req, "inference");
    return {
      object: "list",
      data: [...ctx.registry.servedModels().keys()]
        .sort()
        .map((id) => ({ id, object: "model", created: 0, owned_by: "beta9" })),
    };
  });

  for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) {
    app.post(path, { bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "inference");
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
      const model = body.model;
      if (typeof model !== "string" || !model) {
        return openaiError(reply, 400, "invalid_request_error", "bad_request", "`model` is required");
      }
      const startedAt = performance.now();
      // Scale from zero: a deployed model with no replica now is loaded first (bounded wait).
      const deployment = await ctx.deployments(caller.workspaceId, model);
      if (deployment && !ctx.router.pick(model)) {
        try {
          await ctx.replicas.ensure(deployment);
        } catch (err) {
          ctx.metrics.requests.inc({ model, status: "503" });
          reply.header("retry-after", "10");
          return openaiError(reply, 503, "server_error", "unavailable", (err as Error).message);
        }
      }
      const seconds = () => (performance.now() - startedAt) / 1000;
      const tried = new Set<string>();
      let lastError: Error | undefined;
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const machine = ctx.router.pick(model, tried);
        if (!machine) break;
        tried.add(machine.id);
        ctx.router.begin(machine.id);
        ctx.replicas.touch(machine.id, model);
        if (deployment) ctx.replicas.scaleUp(deployment, ctx.router.outstanding(machine.id));
        try {
          const res = await forwardToAgent(reply, machine.link, {
            path,
            body: JSON.stringify(body),
            headers: { "content-type": "application/json", accept: String(req.headers.accept ?? "*/*") },
            headersTimeoutMs: 300_000,
            // The agent answers 502/503 when its engine is down or busy: nothing was generated, so
            // another machine may take the request, unless this is the last try.
            retryOn: attempt < MAX_ATTEMPTS - 1 ? (status) => status === 502 || status === 503 : undefined,
            onFirstChunk: () => ctx.metrics.timeToFirstToken.observe({ model }, seconds()),
          });
          if (res.started) {
            await new Promise<void>((r) =>
              reply.raw.writableFinished || reply.raw.destroyed ? r() : reply.raw.once("close", () => r()),
            );
            ctx.metrics.requests.inc({ model, status: String(res.status) });
            ctx.metrics.duration.observe({ model }, seconds());
            return;
          }
          lastError = res.error;
          ctx.log.warn(
            { machine_id: machine.id, model, err: res.error.message },
            "machine failed before answering; trying another",
          );
        } finally {
          ctx.router.end(machine.id);
        }
      }
      if (tried.size === 0) {
        // Unknown names are not labels: a caller must not be able to grow the metrics without bound.
        ctx.metrics.requests.inc({ model: "unknown", status: "404" });
        const known = ctx.registry.servedModels();
        return openaiError(
          reply,
          404,
          "invalid_request_error",
          "model_not_found",
          `The model \`${model}\` is not served by any machine${known.size ? ` (served: ${[...known.keys()].sort().join(", ")})` : ""}; start it on a machine with POST /inference/start`,
        );
      }
      ctx.metrics.requests.inc({ model, status: "503" });
      reply.header("retry-after", "2");
      return openaiError(
        reply,
        503,
        "server_error",
        "unavailable",
        `every machine serving ${model} failed to answer (${lastError?.message ?? "unknown error"}); retry shortly`,
      );
    });
  }
};

/** OpenAI's error shape (with our stable code), so openai clients raise their usual exceptions. */
function openaiError(reply: FastifyReply, status: number, type: string, code: string, message: string) {
  return reply.status(status).send({ error: { message, type, param: null, code } });
}
