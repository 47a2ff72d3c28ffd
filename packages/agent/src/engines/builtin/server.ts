import { bearerToken } from "@beta9/http/bearer";
import type { Logger } from "@beta9/http/logger";
import { serverOptions } from "@beta9/http/server-options";
import type { ModelList } from "@beta9/protocol";
import type { JsonSchemaToTsProvider } from "@fastify/type-provider-json-schema-to-ts";
import Fastify, { type FastifyInstance } from "fastify";
import { sameKey } from "../engine-key.ts";
import { adminRoutes } from "./admin.ts";
import { chatRoutes } from "./chat.ts";
import { completionRoutes } from "./completions.ts";
import { embeddingRoutes } from "./embeddings.ts";
import { EngineError, installOpenAIErrors } from "./errors.ts";
import type { ModelRegistry } from "./models.ts";

/** Chat histories and embedding batches can be long; 8 MiB covers a 128k-token context of text. */
const BODY_LIMIT = 8 * 1024 * 1024;

/**
 * The builtin engine's HTTP API: OpenAI-compatible /v1, the agent's /admin, and /health. Every route
 * asks for the agent's key: any local user can reach a loopback port.
 */
export async function buildServer(opts: {
  registry: ModelRegistry;
  log: Logger;
  apiKey: string;
  /** Called when an unload leaves no model loaded (see adminRoutes). */
  onEmpty?: () => void;
}): Promise<FastifyInstance> {
  const { registry } = opts;
  const app = Fastify({
    ...serverOptions(opts.log, BODY_LIMIT),
    // On close, generations are already stopped (preClose); keep-alive sockets must not hold the exit.
    forceCloseConnections: true,
  }).withTypeProvider<JsonSchemaToTsProvider>();
  installOpenAIErrors(app);
  app.addHook("onRequest", async (req) => {
    if (!sameKey(bearerToken(req.headers.authorization), opts.apiKey))
      throw new EngineError(
        401,
        "unauthorized",
        "this engine answers only the agent that started it; send its key as Authorization: Bearer",
      );
  });
  // Shutting down: stop every generation first, or close() would wait for streams to finish.
  app.addHook("preClose", async () => {
    await registry.unloadAll();
  });

  app.get("/health", async () => ({ status: "ok" }));

  app.get("/v1/models", async (): Promise<ModelList> => {
    return {
      object: "list",
      data: registry.ready().map((m) => ({
        id: m.name,
        object: "model",
        created: Math.floor(m.loadedAt / 1000),
        owned_by: "beta9",
      })),
    };
  });

  await app.register(adminRoutes, { registry, onEmpty: opts.onEmpty });
  await app.register(chatRoutes, { registry });
  await app.register(completionRoutes, { registry });
  await app.register(embeddingRoutes, { registry });
  return app;
}
