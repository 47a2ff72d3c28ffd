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
