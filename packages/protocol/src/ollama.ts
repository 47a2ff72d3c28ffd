import { type Static, Type } from "typebox";
import { optionalNullable as nullable } from "./openai.ts";

/*
 * The Ollama API the gateway answers at /api: the shapes of its answers, as Ollama clients read them.
 */

/** A tool call in an Ollama message: its arguments are an object (OpenAI's are a JSON string). */
export interface OllamaToolCall {
  function: { name: string; arguments: unknown };
}

/** Ollama's statistics of one answer, in nanoseconds and tokens. */
export interface OllamaStats {
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
  prompt_eval_duration: number;
  eval_count: number;
  eval_duration: number;
}

export interface OllamaMessage {
  role: "assistant";
  content: string;
  thinking?: string;
  tool_calls?: OllamaToolCall[];
}

/** One NDJSON line of /api/chat (the last one, `done: true`, carries the statistics). */
export interface OllamaChatLine {
  model: string;
  created_at: string;
  message: OllamaMessage;
  done: boolean;
  done_reason?: string;
}

/** One NDJSON line of /api/generate. */
export interface OllamaGenerateLine {
  model: string;
  created_at: string;
  response: string;
  thinking?: string;
  done: boolean;
  done_reason?: string;
}

/** POST /api/embed's answer. */
export interface OllamaEmbedResponse {
  model: string;
  embeddings: number[][];
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
}

/** POST /api/embeddings' answer (the older endpoint). */
export interface OllamaEmbeddingsResponse {
  embedding: number[];
}

/*
 * Ollama's requests: the fields the gateway reads, each with the type it must have. Like Ollama,
 * `null` stands for a field left out; fields not named here are ignored. Each `description` finishes
 * the sentence "field must be …" of a refusal.
 */

/** `name` is the older spelling of `model` that Ollama still accepts. */
const Named = {
  model: nullable(Type.String(), "a model name"),
  name: nullable(Type.String(), "a model name"),
};
const Stream = { stream: nullable(Type.Boolean(), "true or false") };
const Images = nullable(Type.Array(Type.String()), "an array of base64 strings");
/** What chat and generate share: sampling options and the answer's format. */
const Generation = {
  ...Named,
  ...Stream,
  options: nullable(Type.Object({}), "an object"),
  format: Type.Optional(Type.Unknown()),
  think: Type.Optional(Type.Unknown()),
  /** How long the model stays loaded after: a duration ("5m"), seconds, or 0 to unload it now. */
  keep_alive: Type.Optional(Type.Unknown()),
};

/** POST /api/show, /api/pull. */
export const OllamaModelRequest = Type.Object({ ...Named, ...Stream });
export type OllamaModelRequest = Static<typeof OllamaModelRequest>;

/** POST /api/chat. */
export const OllamaChatRequest = Type.Object({
  ...Generation,
  messages: nullable(Type.Array(Type.Unknown()), "an array"),
  tools: nullable(Type.Array(Type.Unknown()), "an array"),
});
export type OllamaChatRequest = Static<typeof OllamaChatRequest>;

/** POST /api/generate. */
export const OllamaGenerateRequest = Type.Object({
  ...Generation,
  prompt: nullable(Type.String(), "a string"),
  system: nullable(Type.String(), "a string"),
  suffix: nullable(Type.String(), "a string"),
  template: nullable(Type.String(), "a string"),
  raw: nullable(Type.Boolean(), "true or false"),
  images: Images,
});
export type OllamaGenerateRequest = Static<typeof OllamaGenerateRequest>;

/** POST /api/embed: `input` is one text or several. */
export const OllamaEmbedRequest = Type.Object({
  ...Named,
  input: nullable(Type.Union([Type.String(), Type.Array(Type.String())]), "a string or an array of strings"),
  dimensions: nullable(Type.Integer({ minimum: 1 }), "a positive integer"),
});
export type OllamaEmbedRequest = Static<typeof OllamaEmbedRequest>;

/** POST /api/embeddings (the older endpoint): one `prompt`. */
export const OllamaEmbeddingsRequest = Type.Object({
  ...Named,
  prompt: nullable(Type.String(), "a string"),
});
export type OllamaEmbeddingsRequest = Static<typeof OllamaEmbeddingsRequest>;
