import { proxyRequest } from "@beta9/http";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { InferenceManager } from "../inference/manager.ts";

/**
 * The OpenAI-compatible API of this machine's engines, behind the agent's authentication: a client
 * can use one worker directly, as in the fork, while the engines themselves stay on 127.0.0.1.
 */
export const openaiRoutes: FastifyPluginAsync<{ inference: InferenceManager }> = async (
  app,
  { inference },
) => {
  app.get("/v1/models", async () => ({
    object: "list",
    data: inference
      .list()
      .filter((s) => s.state() === "ready")
      .map((s) => ({ id: s.model.name, object: "model", created: 0, owned_by: `beta9/${s.engine}` })),
  }));

  for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) {
    app.post(path, { bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
      const body = req.body as Record<string, unknown> | undefined;
      if (!body || typeof body !== "object" || Array.isArray(body))
        return openaiError(reply, 400, "invalid_request_error", "the body must be a JSON object");
      if (typeof body.model !== "string" || !body.model)
        return openaiError(reply, 400, "invalid_request_error", "`model` is required");
      const served = inference.served(body.model);
      if (!served || served.state() !== "ready") {
        const known = inference
          .list()
          .filter((s) => s.state() === "ready")
          .map((s) => s.model.name);
        return openaiError(
          reply,
          404,
          "model_not_found",
          `The model \`${body.model}\` is not being served on this machine${known.length ? ` (serving: ${known.join(", ")})` : ""}; start it with POST /inference/start`,
        );
      }
      await proxyRequest(reply, {
        url: `${served.endpoint}${path}`,
        body: JSON.stringify({ ...body, model: served.upstreamModel }),
        headers: {
          "content-type": "application/json",
          accept: String(req.headers.accept ?? "*/*"),
          ...served.authHeaders(),
        },
      });
    });
  }
};

/** OpenAI's own error shape, so the openai clients raise their usual exceptions. */
function openaiError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.status(status).send({
    error: { message, type: status >= 500 ? "server_error" : "invalid_request_error", param: null, code },
  });
}
