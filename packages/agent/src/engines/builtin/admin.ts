import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import type { ModelRegistry } from "./models.ts";

/** A model name as clients use it: letters, digits and . _ - : / (as the agent's control API allows). */
const ModelName = {
  type: "string",
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
} as const;

/** Plain JSON Schema, as openai-types.ts says why. */
export const LoadModelBody = {
  type: "object",
  required: ["name", "path"],
  additionalProperties: false,
  properties: {
    name: ModelName,
    path: { type: "string", minLength: 1, maxLength: 4096 },
    /** Tokens per sequence; the model's training context, at most 4096, when absent. */
    context_size: { type: "integer", minimum: 64, maximum: 1_048_576 },
    /** Layers to offload to the GPU; node-llama-cpp fits as many as memory allows when absent ("auto"). */
    gpu_layers: { anyOf: [{ type: "integer", minimum: 0 }, { const: "auto" }, { const: "max" }] },
    /** Requests generating at once (context sequences); more wait in line. Default 4. */
    parallel: { type: "integer", minimum: 1, maximum: 64 },
  },
} as const;

const ModelParams = {
  type: "object",
  required: ["name"],
  properties: { name: { type: "string", minLength: 1, maxLength: 128 } },
} as const;

/**
 * The agent's routes: load, unload and list models. Only the agent calls them (the engine listens on
 * 127.0.0.1 and the agent never forwards /admin).
 */
export const adminRoutes: FastifyPluginAsyncJsonSchemaToTs<{
  Options: {
    registry: ModelRegistry;
    /** Called once the last model is unloaded, after the reply: an idle engine gives its memory back. */
    onEmpty?: () => void;
  };
}> = async (app, { registry, onEmpty }) => {
  app.post("/admin/models", { schema: { body: LoadModelBody } }, async (req, reply) => {
    const { model, created } = await registry.load(req.body);
    const view = registry.list().find((m) => m.name === model.name);
    return reply.status(created ? 201 : 200).send(view);
  });

  app.delete("/admin/models/:name", { schema: { params: ModelParams } }, async (req) => {
    await registry.unload(req.params.name);
    if (onEmpty && registry.list().length === 0)
      setImmediate(() => {
        // A load asked for meanwhile is not made to share its start with a full collection.
        if (registry.list().length === 0) onEmpty();
      });
    return { name: req.params.name, state: "unloaded" };
  });

  app.get("/admin/models", async () => {
    const used = registry.usedBytes();
    return {
      models: registry.list(),
      memory: {
        budget_bytes: registry.budget,
        used_bytes: used,
        free_bytes: Math.max(0, registry.budget - used),
      },
    };
  });
};
