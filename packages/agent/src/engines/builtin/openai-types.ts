import type { FromSchema, JSONSchema } from "json-schema-to-ts";

/*
 * The OpenAI requests the builtin engine takes, as schemas fastify validates at the edge (its answers'
 * shapes are in @beta9/protocol's openai.ts). Fields OpenAI has and we do not use are accepted and
 * ignored, except where ignoring them would change the answer (n > 1, tools, logprobs): those are refused.
 * Extensions shared with llama.cpp's server and vLLM: top_k, min_p, repeat_penalty. (Not ignore_eos:
 * node-llama-cpp's token bias never touches end-of-generation tokens.)
 *
 * Written as plain JSON Schema, typed by json-schema-to-ts at compile time only: the engine is kept
 * warm on every idle machine, and a schema builder loaded at run time (TypeBox: 373 modules) costs it
 * ~3.5 MB for four schemas (bench/engine).
 */

/** A field that may be left out or null (as clients often send for "unset"). */
const nullable = <const T extends JSONSchema>(schema: T) => ({ anyOf: [schema, { type: "null" }] }) as const;

const Stop = nullable({
  anyOf: [
    { type: "string", maxLength: 256 },
    { type: "array", items: { type: "string", maxLength: 256 }, maxItems: 16 },
  ],
});

/** Sampling and length fields shared by chat and text completions. */
const Sampling = {
  model: { type: "string", minLength: 1, maxLength: 256 },
  stream: nullable({ type: "boolean" }),
  stream_options: nullable({ type: "object", properties: { include_usage: { type: "boolean" } } }),
  max_tokens: nullable({ type: "integer", minimum: 1 }),
  temperature: nullable({ type: "number", minimum: 0, maximum: 2 }),
  top_p: nullable({ type: "number", minimum: 0, maximum: 1 }),
  top_k: nullable({ type: "integer", minimum: 0 }),
  min_p: nullable({ type: "number", minimum: 0, maximum: 1 }),
  seed: nullable({ type: "integer" }),
  stop: Stop,
  frequency_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  presence_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  repeat_penalty: nullable({ type: "number", minimum: 0, maximum: 10 }),
  n: nullable({ type: "integer", minimum: 1, maximum: 1 }),
} as const;

export const ContentPart = {
  type: "object",
  required: ["type"],
  properties: { type: { type: "string" }, text: { type: "string" } },
} as const satisfies JSONSchema;

export const ChatMessage = {
  type: "object",
  required: ["role"],
  properties: {
    role: { enum: ["system", "developer", "user", "assistant", "tool"] },
    content: {
      anyOf: [{ type: "string" }, { type: "null" }, { type: "array", items: ContentPart, maxItems: 256 }],
    },
    name: { type: "string" },
    tool_calls: {},
  },
} as const satisfies JSONSchema;
export type ChatMessage = FromSchema<typeof ChatMessage>;

export const ChatCompletionRequest = {
  type: "object",
  required: ["model", "messages"],
  properties: {
    ...Sampling,
    messages: { type: "array", items: ChatMessage, minItems: 1, maxItems: 4096 },
    max_completion_tokens: nullable({ type: "integer", minimum: 1 }),
    tools: {},
    tool_choice: {},
    response_format: nullable({
      type: "object",
      required: ["type"],
      properties: { type: { type: "string" } },
    }),
    logprobs: nullable({ type: "boolean" }),
  },
} as const satisfies JSONSchema;
export type ChatCompletionRequest = FromSchema<typeof ChatCompletionRequest>;

export const CompletionRequest = {
  type: "object",
  required: ["model", "prompt"],
  properties: {
    ...Sampling,
    prompt: {
      anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 1 }],
    },
    echo: nullable({ type: "boolean" }),
    suffix: nullable({ type: "string" }),
    logprobs: nullable({ type: "integer" }),
    best_of: nullable({ type: "integer", minimum: 1, maximum: 1 }),
  },
} as const satisfies JSONSchema;
export type CompletionRequest = FromSchema<typeof CompletionRequest>;

export const EmbeddingRequest = {
  type: "object",
  required: ["model", "input"],
  properties: {
    model: { type: "string", minLength: 1, maxLength: 256 },
    input: {
      anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2048 }],
    },
    encoding_format: nullable({ enum: ["float", "base64"] }),
    dimensions: nullable({ type: "integer", minimum: 1 }),
  },
} as const satisfies JSONSchema;
export type EmbeddingRequest = FromSchema<typeof EmbeddingRequest>;
