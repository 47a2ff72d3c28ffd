import type { EmbeddingList } from "@beta9/protocol";
import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import { clientAbortSignal } from "./client-abort.ts";
import { badRequest, EngineError } from "./errors.ts";
import type { ModelRegistry } from "./models.ts";
import { EmbeddingRequest } from "./openai-types.ts";

/** POST /v1/embeddings: one unit-length vector per input, as floats or base64 float32 (openai-node asks for that). */
export const embeddingRoutes: FastifyPluginAsyncJsonSchemaToTs<{
  Options: { registry: ModelRegistry };
}> = async (app, { registry }) => {
  app.post(
    "/v1/embeddings",
    { schema: { body: EmbeddingRequest } },
    async (req, reply): Promise<EmbeddingList | undefined> => {
      const body = req.body;
      const model = registry.get(body.model);
      const inputs = typeof body.input === "string" ? [body.input] : body.input;
      const index = inputs.indexOf("");
      if (index >= 0) throw badRequest(`input[${index}] is empty; every input needs some text`, "input");
      const size = model.model.embeddingVectorSize;
      if (body.dimensions != null && body.dimensions !== size)
        throw badRequest(
          `this model's embeddings have ${size} dimensions; leave dimensions out or send ${size}`,
          "dimensions",
        );

      const lengths: number[] = [];
      for (const [i, input] of inputs.entries()) {
        const n = await model.embeddingInputLength(input);
        if (n >= model.spec.contextSize) {
          throw new EngineError(
            400,
            "context_length_exceeded",
            `input[${i}] is ${n} tokens and this model's context is ${model.spec.contextSize}; shorten it or load the model with a larger context_size`,
            { param: "input" },
          );
        }
        lengths.push(n);
      }

      const client = clientAbortSignal(reply);
      let vectors: number[][];
      try {
        vectors = await model.embed(inputs, client.signal);
      } catch (err) {
        if (!client.signal.aborted) throw err;
        reply.hijack();
        return undefined;
      }
      const tokens = lengths.reduce((a, b) => a + b, 0);
      const base64 = body.encoding_format === "base64";
      return {
        object: "list",
        data: vectors.map((v, i) => {
          const unit = normalize(v);
          return {
            object: "embedding" as const,
            index: i,
            embedding: base64 ? Buffer.from(new Float32Array(unit).buffer).toString("base64") : unit,
          };
        }),
        model: body.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    },
  );
};

/** Scale to unit length, as OpenAI's embeddings are (cosine similarity is then a dot product). */
export function normalize(v: readonly number[]): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? v.map((x) => x / norm) : [...v];
}
