import { randomUUID } from "node:crypto";
import type { TextCompletion } from "@beta9/protocol";
import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import { LlamaCompletion, LlamaVocabularyType, type Token } from "node-llama-cpp";
import { badRequest } from "./errors.ts";
import { serveGeneration, type WireFormat } from "./generation.ts";
import type { LoadedModel } from "./loaded-model.ts";
import type { ModelRegistry } from "./models.ts";
import { CompletionRequest } from "./openai-types.ts";
import { samplingOptions } from "./sampling.ts";

/** POST /v1/completions: the raw prompt continued, no chat template. */
export const completionRoutes: FastifyPluginAsyncJsonSchemaToTs<{
  Options: { registry: ModelRegistry };
}> = async (app, { registry }) => {
  app.post("/v1/completions", { schema: { body: CompletionRequest } }, async (req, reply) => {
    const body = req.body;
    if (body.suffix)
      throw badRequest("the builtin engine does not support suffix (fill-in-the-middle)", "suffix");
    if (body.logprobs != null) throw badRequest("the builtin engine does not return logprobs", "logprobs");
    const model = registry.get(body.model);
    const prompt = typeof body.prompt === "string" ? body.prompt : (body.prompt[0] ?? "");
    const { tokens, promptTokens } = tokenizePrompt(model, prompt);
    const sampling = samplingOptions(body, model, promptTokens);
    const echo = body.echo === true ? prompt : "";
    return serveGeneration(req, reply, {
      model,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      promptTokens,
      wire: completionWire(body.model, echo),
      async run(sequence, io) {
        const completion = new LlamaCompletion({ contextSequence: sequence });
        try {
          const r = await completion.generateCompletionWithMeta(tokens, {
            ...sampling,
            signal: io.signal,
            stopOnAbortSignal: true,
            // Our own check already made room for max_tokens: never shift the context or cut the prompt
            // (it would otherwise keep 10% of the context free by dropping the prompt's start).
            disableContextShift: true,
            contextShiftSize: 1,
            onToken: (t) => io.onTokens(t.length),
            onTextChunk: (text) => io.onText(text),
          });
          return { text: r.response, reasoning: "", stopReason: r.metadata.stopReason };
        } finally {
          completion.dispose({ disposeSequence: false });
        }
      },
    });
  });
};

/**
 * The prompt's tokens without the BOS token node-llama-cpp prepends itself, and the count with it
 * (what the context holds).
 */
function tokenizePrompt(model: LoadedModel, prompt: string): { tokens: Token[]; promptTokens: number } {
  const m = model.model;
  const bos =
    m.vocabularyType === LlamaVocabularyType.wpm
      ? m.tokens.bos
      : m.vocabularyType === LlamaVocabularyType.rwkv || m.vocabularyType === LlamaVocabularyType.ugm
        ? null
        : m.tokens.shouldPrependBosToken
          ? m.tokens.bos
          : null;
  const tokens = m.tokenize(prompt, false, bos != null ? "trimLeadingSpace" : undefined);
  return { tokens, promptTokens: tokens.length + (bos != null ? 1 : 0) };
}

function completionWire(modelName: string, echo: string): WireFormat<TextCompletion> {
  const id = `cmpl-${randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (
    text: string,
    finish: TextCompletion["choices"][number]["finish_reason"],
  ): TextCompletion => ({
    id,
    object: "text_completion",
    created,
    model: modelName,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
  });
  return {
    opening: () => (echo ? [chunk(echo, null)] : []),
    delta: (text) => chunk(text, null),
    closing: (finish) => chunk("", finish),
    usageChunk: (usage) => ({ id, object: "text_completion", created, model: modelName, choices: [], usage }),
    complete: (result, finish, usage) => ({ ...chunk(echo + result.text, finish), usage }),
  };
}
