import { type Static, Type } from "typebox";

/*
 * The OpenAI-compatible API: what clients send the gateway (and an agent's /v1), what engines
 * answer. Requests are open objects: clients send many fields we do not read, and those pass through
 * to the engine untouched; only the fields the gateway reads are typed here.
 */

/** A field that may be left out or null (as clients often send for "unset"). */
export const optionalNullable = <T extends Parameters<typeof Type.Optional>[0]>(t: T, description?: string) =>
  Type.Optional(Type.Union([t, Type.Null()], description === undefined ? {} : { description }));

/**
 * The fields of a chat, text completion or embeddings request that the gateway reads (the model to
 * route by, whether to stream, and what admission estimates the request's tokens from). Each
 * `description` finishes the sentence "`field` must be …" of a refusal.
 */
export const OpenAIRequest = Type.Object({
  model: Type.String({ minLength: 1, description: "a model name" }),
  stream: optionalNullable(Type.Boolean(), "true or false"),
  stream_options: optionalNullable(
    Type.Object({ include_usage: optionalNullable(Type.Boolean(), "true or false") }),
    'an object such as {"include_usage": true}',
  ),
  messages: Type.Optional(Type.Array(Type.Unknown(), { description: "an array of messages" })),
  n: optionalNullable(Type.Integer(), "an integer"),
  max_tokens: optionalNullable(Type.Number(), "a number"),
  max_completion_tokens: optionalNullable(Type.Number(), "a number"),
});
export type OpenAIRequest = Static<typeof OpenAIRequest> & Record<string, unknown>;

/** Why generation stopped: at a stop sequence or the end of the answer, or at its token limit. */
export type FinishReason = "stop" | "length";

/** Token counts as a whole answer (or the usage chunk of a stream) carries them. */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Token counts as read from any engine's answer: either may be missing. */
export interface TokenUsage {
  prompt_tokens?: number | undefined;
  completion_tokens?: number | undefined;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: "assistant"; content: string; reasoning_content?: string; refusal: null };
    logprobs: null;
    finish_reason: FinishReason;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: "assistant"; content?: string; reasoning_content?: string };
    logprobs: null;
    finish_reason: FinishReason | null;
  }[];
  usage?: CompletionUsage | null;
}

export interface TextCompletion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: { index: number; text: string; logprobs: null; finish_reason: FinishReason | null }[];
  usage?: CompletionUsage | null;
}

export interface EmbeddingList {
  object: "list";
  data: { object: "embedding"; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export interface ModelList {
  object: "list";
  data: { id: string; object: "model"; created: number; owned_by: string }[];
}

/** A piece of a streamed tool call: its name and arguments arrive in parts, matched by `index`. */
export interface ToolCallDelta {
  index?: number;
  function?: { name?: string | null; arguments?: string | null } | null;
}

/**
 * One streamed chunk as any OpenAI-compatible engine may send it (vLLM, llama.cpp, Ollama's /v1, the
 * builtin one): a chat chunk's `delta` or a text completion's `text`, reasoning under either name
 * engines use, and an error event when the answer failed mid-way. Every field may be missing.
 */
export interface EngineChunk {
  choices?:
    | {
        delta?: {
          content?: string | null;
          reasoning_content?: string | null;
          reasoning?: string | null;
          tool_calls?: ToolCallDelta[] | null;
        } | null;
        text?: string | null;
        finish_reason?: string | null;
      }[]
    | null;
  usage?: TokenUsage | null;
  error?: { message?: string; code?: string; type?: string } | string | null;
}
