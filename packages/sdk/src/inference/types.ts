import type { RequestOptions } from "../transport.ts";

export type Role = "system" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: Role;
  content: string;
  /** Tells apart speakers of the same role, where the model supports it. */
  name?: string | undefined;
}

/** How to sample; unset fields take the engine's defaults. */
export interface SamplingOptions {
  /** Most tokens to generate. */
  maxTokens?: number | undefined;
  /** 0 to 2; 0 picks the likeliest token every time. */
  temperature?: number | undefined;
  /** 0 to 1: sample only from the tokens that make up this much probability. */
  topP?: number | undefined;
  /** Generation stops before any of these. */
  stop?: string | string[] | undefined;
  /** Same seed, same settings, same model: the same answer, on engines that honour it. */
  seed?: number | undefined;
  presencePenalty?: number | undefined;
  frequencyPenalty?: number | undefined;
  /** Any other field of the OpenAI request, sent as it is (snake_case), e.g. `{ logit_bias: {...} }`. */
  extra?: Record<string, unknown> | undefined;
}

export interface ChatRequest extends SamplingOptions {
  model: string;
  messages: ChatMessage[];
  /** true: answer with a `CompletionStream` of chunks as the model generates them. */
  stream?: boolean | undefined;
}

export interface GenerateRequest extends SamplingOptions {
  model: string;
  prompt: string;
  stream?: boolean | undefined;
}

export interface EmbedRequest {
  model: string;
  /** One text, or several embedded in one call. */
  input: string | string[];
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** A whole answer of `chat` or `generate`. */
export interface Completion {
  /** The generated text. */
  content: string;
  /** The model that answered, as the server names it. */
  model: string;
  /** "stop" (the model finished), "length" (maxTokens reached), …; null when the answer was cut short. */
  finishReason: string | null;
  /** Token counts, when the server sent them. */
  usage: Usage | null;
  /** The server's JSON answer (for a stream: null). */
  raw: unknown;
}

/** One piece of a streamed answer. */
export interface CompletionChunk {
  /** The text this chunk adds; "" for chunks that carry only a role, the finish reason or the usage. */
  content: string;
  model: string;
  /** Set on the chunk that ends the answer. */
  finishReason: string | null;
  /** Set on the last chunk, when the server counted. */
  usage: Usage | null;
  /** The event's JSON as the server sent it. */
  raw: unknown;
}

export interface Embeddings {
  /** The first input's vector: what you want when you embedded one text. */
  embedding: number[];
  /** One vector per input, in the order given. */
  embeddings: number[][];
  model: string;
  usage: { promptTokens: number; totalTokens: number } | null;
}

export interface ModelInfo {
  /** The name to pass as `model`. */
  id: string;
  ownedBy: string;
}

export interface InferenceOptions extends RequestOptions {
  /**
   * How long to wait for the answer to begin; for a non-streamed call, for all of it. A model with no
   * replica running is loaded first (a cold start), so this is long. Default: the client's
   * `inferenceTimeoutMs`.
   */
  timeoutMs?: number | undefined;
}
