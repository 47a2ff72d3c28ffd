import { optionalNullable as nullable } from "@beta9/protocol/openai";
import { type Static, Type } from "typebox";

/*
 * The OpenAI requests the builtin engine takes, as schemas fastify validates at the edge (its answers'
 * shapes are in @beta9/protocol's openai.ts). Fields OpenAI has and we do not use are accepted and
 * ignored, except where ignoring them would change the answer (n > 1, tools, logprobs): those are refused.
 * Extensions shared with llama.cpp's server and vLLM: top_k, min_p, repeat_penalty. (Not ignore_eos:
 * node-llama-cpp's token bias never touches end-of-generation tokens.)
 */

const Stop = nullable(
  Type.Union([
    Type.String({ maxLength: 256 }),
    Type.Array(Type.String({ maxLength: 256 }), { maxItems: 16 }),
  ]),
);

/** Sampling and length fields shared by chat and text completions. */
const Sampling = {
  model: Type.String({ minLength: 1, maxLength: 256 }),
  stream: nullable(Type.Boolean()),
  stream_options: nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  max_tokens: nullable(Type.Integer({ minimum: 1 })),
  temperature: nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: nullable(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: nullable(Type.Integer({ minimum: 0 })),
  min_p: nullable(Type.Number({ minimum: 0, maximum: 1 })),
  seed: nullable(Type.Integer()),
  stop: Stop,
  frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  repeat_penalty: nullable(Type.Number({ minimum: 0, maximum: 10 })),
  n: nullable(Type.Integer({ minimum: 1, maximum: 1 })),
};

export const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

export const ChatMessage = Type.Object({
  role: Type.Union([
    Type.Literal("system"),
    Type.Literal("developer"),
    Type.Literal("user"),
    Type.Literal("assistant"),
    Type.Literal("tool"),
  ]),
  content: Type.Optional(
    Type.Union([Type.String(), Type.Null(), Type.Array(ContentPart, { maxItems: 256 })]),
  ),
  name: Type.Optional(Type.String()),
  tool_calls: Type.Optional(Type.Unknown()),
});
export type ChatMessage = Static<typeof ChatMessage>;

export const ChatCompletionRequest = Type.Object({
  ...Sampling,
  messages: Type.Array(ChatMessage, { minItems: 1, maxItems: 4096 }),
  max_completion_tokens: nullable(Type.Integer({ minimum: 1 })),
  tools: Type.Optional(Type.Unknown()),
  tool_choice: Type.Optional(Type.Unknown()),
  response_format: nullable(Type.Object({ type: Type.String() })),
  logprobs: nullable(Type.Boolean()),
});
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

export const CompletionRequest = Type.Object({
  ...Sampling,
  prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 1 })]),
  echo: nullable(Type.Boolean()),
  suffix: nullable(Type.String()),
  logprobs: nullable(Type.Integer()),
  best_of: nullable(Type.Integer({ minimum: 1, maximum: 1 })),
});
export type CompletionRequest = Static<typeof CompletionRequest>;

export const EmbeddingRequest = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 2048 })]),
  encoding_format: nullable(Type.Union([Type.Literal("float"), Type.Literal("base64")])),
  dimensions: nullable(Type.Integer({ minimum: 1 })),
});
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;
