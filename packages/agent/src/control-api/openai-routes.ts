import { proxyRequest } from "@beta9/http";
import { AGENT_ENERGY_TRAILER, REQUEST_ID_HEADER } from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { countStreamedTokens, type EngineEnergy } from "../energy/engine-energy.ts";
import type { InferenceManager } from "../inference/manager.ts";

/**
 * The OpenAI-compatible API of this machine's engines, behind the agent's authentication: a client
 * can use one worker directly, as in the fork, while the engines themselves stay on 127.0.0.1.
 */
export const openaiRoutes: FastifyPluginAsync<{
  inference: InferenceManager;
  energy?: EngineEnergy;
}> = async (app, { inference, energy }) => {
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
      const metered = energy?.begin(served);
      const started = performance.now();
      let status: number | undefined;
      try {
        await proxyRequest(reply, {
          url: `${served.endpoint}${path}`,
          body: JSON.stringify({ ...body, model: served.upstreamModel }),
          headers: {
            "content-type": "application/json",
            accept: String(req.headers.accept ?? "*/*"),
            // The gateway's id for the request (or this one's, for a local caller): the engine logs it.
            [REQUEST_ID_HEADER]: req.id,
            ...served.authHeaders(),
          },
          onResponse: (s) => {
            status = s;
          },
          ...(metered === undefined
            ? {}
            : {
                onChunk: (chunk: Buffer) => metered.tokens(countStreamedTokens(chunk)),
                ...(acceptsTrailers(req)
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
        app.log.info(
          {
            request_id: req.id,
            model: served.model.name,
            engine: served.engine,
            status: status ?? null,
            ms: Math.round(performance.now() - started),
          },
          status === undefined
            ? "inference request got no answer from the engine"
            : "inference request answered",
        );
      }
    });
  }
};

/**
 * The gateway's channel is HTTP/2, where trailers always work; a local HTTP/1.1 caller gets them
 * when it says it takes them (`TE: trailers`), as the body is then sent chunked.
 */
function acceptsTrailers(req: FastifyRequest): boolean {
  return req.raw.httpVersionMajor === 2 || /\btrailers\b/i.test(String(req.headers.te ?? ""));
}

/** OpenAI's own error shape, so the openai clients raise their usual exceptions. */
function openaiError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.status(status).send({
    error: { message, type: status >= 500 ? "server_error" : "invalid_request_error", param: null, code },
  });
}
