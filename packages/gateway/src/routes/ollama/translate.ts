import {
  type OllamaChatLine,
  OllamaChatRequest,
  OllamaEmbeddingsRequest,
  type OllamaEmbeddingsResponse,
  OllamaEmbedRequest,
  type OllamaEmbedResponse,
  type OllamaGenerateLine,
  OllamaGenerateRequest,
  type OllamaMessage,
  OllamaModelRequest,
  type OllamaStats,
  type OllamaToolCall,
  type TokenUsage,
} from "@beta9/protocol";
import { bodyCheck } from "../../inference/body-check.ts";
import { badRequest } from "./errors.ts";

/*
 * Ollama's API in terms of the OpenAI-compatible API the agents speak (docs/architecture.md §4): requests
 * are mapped field by field, answers are rebuilt in Ollama's shapes. Everything here is pure; the
 * routes (index.ts) do the I/O and ndjson-stream.ts the streaming.
 */

type Json = Record<string, unknown>;

/** An OpenAI request for an agent: which endpoint, and its body. */
export interface UpstreamRequest {
  /** The model name as the client sent it (answers echo it). */
  model: string;
  /** Ollama streams unless told `"stream": false`. */
  stream: boolean;
  path: "/v1/chat/completions" | "/v1/completions";
  body: Json;
  /** Answered without generating: Ollama loads the model on an empty prompt or empty messages. */
  loadOnly: boolean;
  /** A load with `keep_alive: 0`: Ollama's way to unload a model (`ollama stop`). */
  unload: boolean;
}

/** `keep_alive` 0, "0", "0s", "0m"…: unload now. */
function unloadsNow(v: unknown): boolean {
  return v === 0 || (typeof v === "string" && /^\s*0+(\.0*)?(ms|s|m|h)?\s*$/.test(v));
}

export interface EmbedRequest {
  model: string;
  inputs: string[];
  dimensions?: number;
}

// ---------------------------------------------------------------------------------------------
// Requests

const checkModelRequest = bodyCheck(OllamaModelRequest);
const checkChat = bodyCheck(OllamaChatRequest);
const checkGenerate = bodyCheck(OllamaGenerateRequest);
const checkEmbed = bodyCheck(OllamaEmbedRequest);
const checkEmbeddings = bodyCheck(OllamaEmbeddingsRequest);

/** The body, its fields' types checked against the route's compiled schema (protocol's ollama.ts). */
function checked<T>(check: (body: unknown) => string | undefined, body: unknown): T {
  if (body === undefined || body === null || body === "") throw badRequest("missing request body");
  const refusal = check(body);
  if (refusal) throw badRequest(refusal);
  return body as T;
}

/** POST /api/show and /api/pull: a model name, and for a pull whether to stream its progress. */
export function modelRequest(raw: unknown): { model: string; stream: boolean } {
  const body = checked<OllamaModelRequest>(checkModelRequest, raw);
  return { model: modelOf(body), stream: streamOf(body) };
}

/** Model names are at most this long everywhere (protocol's ModelName). */
const MAX_MODEL_NAME = 128;

function modelOf(body: { model?: string | null; name?: string | null }): string {
  // `name` is the older spelling Ollama still accepts.
  const model = body.model ?? body.name;
  if (!model || model.trim() === "") throw badRequest("model is required");
  // Checked before any lookup, and never echoed back whole.
  if (model.length > MAX_MODEL_NAME)
    throw badRequest(`the model name is longer than ${MAX_MODEL_NAME} characters: "${model.slice(0, 40)}…"`);
  return model;
}

function streamOf(body: { stream?: boolean | null }): boolean {
  return body.stream ?? true;
}

const number = (key: string, v: unknown): number => {
  if (typeof v !== "number" || !Number.isFinite(v)) throw badRequest(`option "${key}" must be a number`);
  return v;
};
const integer = (key: string, v: unknown): number => {
  if (typeof v !== "number" || !Number.isInteger(v)) throw badRequest(`option "${key}" must be an integer`);
  return v;
};

/** Ollama options that have an OpenAI (or llama.cpp/vLLM extension) field: options name → field. */
const SAMPLING = {
  temperature: { field: "temperature", check: number },
  top_p: { field: "top_p", check: number },
  top_k: { field: "top_k", check: integer },
  min_p: { field: "min_p", check: number },
  seed: { field: "seed", check: integer },
  repeat_penalty: { field: "repeat_penalty", check: number },
  presence_penalty: { field: "presence_penalty", check: number },
  frequency_penalty: { field: "frequency_penalty", check: number },
} as const;

/**
 * `options` → OpenAI sampling fields. num_predict > 0 becomes max_tokens (-1 "no limit" and -2 "fill
 * the context" leave it out: the engine then stops at the end of the context). Options that fix how a
 * model is loaded (num_ctx, num_gpu, num_thread, …) are the machine's choice and are ignored, as are
 * samplers OpenAI engines lack (mirostat, typical_p, tfs_z, repeat_last_n).
 */
export function samplingFromOptions(options: object | null | undefined): Json {
  if (options === undefined || options === null) return {};
  const o = options as Json;
  const out: Json = {};
  for (const [key, { field, check }] of Object.entries(SAMPLING)) {
    const v = o[key];
    if (v !== undefined && v !== null) out[field] = check(key, v);
  }
  if (o.num_predict !== undefined && o.num_predict !== null) {
    const n = integer("num_predict", o.num_predict);
    if (n > 0) out.max_tokens = n;
  }
  if (o.stop !== undefined && o.stop !== null) {
    const stop = typeof o.stop === "string" ? [o.stop] : o.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string"))
      throw badRequest('option "stop" must be an array of strings');
    if (stop.length > 0) out.stop = stop;
  }
  return out;
}

/** `format`: "json" → JSON mode, a JSON schema → structured output. */
export function responseFormat(format: unknown): Json | undefined {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { type: "json_object" };
  if (typeof format === "object" && !Array.isArray(format))
    return { type: "json_schema", json_schema: { name: "response", schema: format, strict: true } };
  throw badRequest('format must be "json" or a JSON schema object');
}

/** Fields both /api/chat and /api/generate map the same way. */
function common(body: OllamaChatRequest | OllamaGenerateRequest): Json {
  const out: Json = {
    ...samplingFromOptions(body.options),
    stream: true,
    stream_options: { include_usage: true },
  };
  const format = responseFormat(body.format);
  if (format) out.response_format = format;
  // `think` as a level maps to reasoning_effort; true/false leave the model's default.
  if (body.think === "low" || body.think === "medium" || body.think === "high")
    out.reasoning_effort = body.think;
  return out;
}

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/** base64 image → data URL, the media type read from the file's first bytes. */
export function imageUrl(b64: string): string {
  const type = b64.startsWith("iVBOR")
    ? "image/png"
    : b64.startsWith("R0lGOD")
      ? "image/gif"
      : b64.startsWith("UklGR")
        ? "image/webp"
        : "image/jpeg";
  return `data:${type};base64,${b64}`;
}

function images(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((i) => typeof i === "string"))
    throw badRequest(`${where} must be an array of base64 strings`);
  return v;
}

function content(text: string, imgs: string[]): unknown {
  if (imgs.length === 0) return text;
  return [
    ...(text ? [{ type: "text", text }] : []),
    ...imgs.map((b64) => ({ type: "image_url", image_url: { url: imageUrl(b64) } })),
  ];
}

/**
 * Ollama messages → OpenAI messages. Ollama's tool calls carry no id and its tool results name the
 * tool, so ids are made up here (`call_<message>_<n>`) and each tool result is matched to the oldest
 * unanswered call of its tool (or the oldest unanswered call at all).
 */
export function toOpenAIMessages(messages: readonly unknown[] | null | undefined): Json[] {
  if (messages === undefined || messages === null) return [];
  const pending: { id: string; name: string }[] = [];
  return messages.map((m, i) => {
    if (!m || typeof m !== "object" || Array.isArray(m)) throw badRequest(`messages[${i}] must be an object`);
    const msg = m as Json;
    const role = msg.role;
    if (typeof role !== "string" || !ROLES.has(role))
      throw badRequest(`messages[${i}].role must be one of system, user, assistant, tool`);
    const text = msg.content ?? "";
    if (typeof text !== "string") throw badRequest(`messages[${i}].content must be a string`);
    const imgs = images(msg.images, `messages[${i}].images`);
    if (role === "tool") {
      const name = typeof msg.tool_name === "string" ? msg.tool_name : undefined;
      const at = name ? pending.findIndex((p) => p.name === name) : -1;
      const call = pending.splice(at >= 0 ? at : 0, 1)[0];
      return { role: "tool", content: text, tool_call_id: call?.id ?? `call_${i}_0` };
    }
    const out: Json = { role, content: content(text, imgs) };
    if (role === "assistant" && Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0) {
      out.tool_calls = msg.tool_calls.map((c, j) => {
        const fn = (c as { function?: { name?: unknown; arguments?: unknown } })?.function;
        if (!fn || typeof fn.name !== "string")
          throw badRequest(`messages[${i}].tool_calls[${j}] needs function.name`);
        const id = `call_${i}_${j}`;
        pending.push({ id, name: fn.name });
        const args = typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments ?? {});
        return { id, type: "function", function: { name: fn.name, arguments: args } };
      });
      if (text === "") out.content = null;
    }
    return out;
  });
}

/** POST /api/chat → POST /v1/chat/completions. */
export function chatRequest(raw: unknown): UpstreamRequest {
  const body = checked<OllamaChatRequest>(checkChat, raw);
  const model = modelOf(body);
  const stream = streamOf(body);
  const messages = toOpenAIMessages(body.messages);
  const out: Json = { ...common(body), model, messages };
  if (body.tools && body.tools.length > 0) out.tools = body.tools;
  const loadOnly = messages.length === 0;
  return {
    model,
    stream,
    path: "/v1/chat/completions",
    body: out,
    loadOnly,
    unload: loadOnly && unloadsNow(body.keep_alive),
  };
}

/**
 * POST /api/generate. Ollama renders the prompt (and `system`) with the model's template unless `raw`
 * is set: so a plain generate is a one-turn chat (the engine applies the template), and a raw one, or
 * one with a `suffix` (fill-in-the-middle), is a text completion of the prompt as sent.
 */
export function generateRequest(raw: unknown): UpstreamRequest {
  const body = checked<OllamaGenerateRequest>(checkGenerate, raw);
  const model = modelOf(body);
  const stream = streamOf(body);
  const prompt = body.prompt ?? "";
  const system = body.system ?? "";
  const suffix = body.suffix ?? "";
  if (body.template)
    throw badRequest(
      "template overrides are not supported: the machine's engine applies the model's own template; send raw: true with a prompt you formatted yourself",
    );
  const imgs = body.images ?? [];
  const loadOnly = prompt === "" && imgs.length === 0;
  const unload = loadOnly && unloadsNow(body.keep_alive);
  const rawMode = body.raw === true || suffix !== "";
  if (rawMode) {
    if (imgs.length > 0) throw badRequest("images need the model's template; leave raw and suffix out");
    const out: Json = { ...common(body), model, prompt };
    if (suffix) out.suffix = suffix;
    return { model, stream, path: "/v1/completions", body: out, loadOnly, unload };
  }
  const messages: Json[] = [];
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: content(prompt, imgs) });
  return {
    model,
    stream,
    path: "/v1/chat/completions",
    body: { ...common(body), model, messages },
    loadOnly,
    unload,
  };
}

/** POST /api/embed: `input` is a string or an array of strings. */
export function embedRequest(raw: unknown): EmbedRequest {
  const body = checked<OllamaEmbedRequest>(checkEmbed, raw);
  const model = modelOf(body);
  const input = body.input ?? [];
  const inputs = typeof input === "string" ? (input === "" ? [] : [input]) : input;
  const out: EmbedRequest = { model, inputs };
  if (body.dimensions !== undefined && body.dimensions !== null) out.dimensions = body.dimensions;
  return out;
}

/** POST /api/embeddings (the older endpoint): one `prompt`. */
export function embeddingsRequest(raw: unknown): EmbedRequest {
  const body = checked<OllamaEmbeddingsRequest>(checkEmbeddings, raw);
  const model = modelOf(body);
  const prompt = body.prompt ?? "";
  return { model, inputs: prompt === "" ? [] : [prompt] };
}

export function embeddingsBody(req: EmbedRequest): Json {
  const out: Json = { model: req.model, input: req.inputs, encoding_format: "float" };
  if (req.dimensions !== undefined) out.dimensions = req.dimensions;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Answers

/** Times in milliseconds (performance.now()) of one request's life at the gateway. */
export interface Timings {
  /** The request arrived. */
  startedAt: number;
  /** It was sent to a machine. */
  sentAt: number;
  /** The first piece of the answer came back. */
  firstTokenAt?: number | undefined;
  endedAt: number;
}

const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/**
 * Ollama's statistics, in nanoseconds, measured at the gateway: the prompt's evaluation is the time
 * to the first token, the answer's the time from there to the end. Load time is 0: requests only go to
 * machines that already serve the model. Counts come from the engine's usage, or count the pieces.
 */
export function metrics(t: Timings, usage: TokenUsage | undefined, pieces: number): OllamaStats {
  const first = t.firstTokenAt ?? t.endedAt;
  return {
    total_duration: ns(t.endedAt - t.startedAt),
    load_duration: 0,
    prompt_eval_count: usage?.prompt_tokens ?? 0,
    prompt_eval_duration: ns(first - t.sentAt),
    eval_count: usage?.completion_tokens ?? pieces,
    eval_duration: ns(t.endedAt - first),
  };
}

/** OpenAI's finish_reason → Ollama's done_reason. */
export function doneReason(finish: string | null | undefined): "stop" | "length" {
  return finish === "length" ? "length" : "stop";
}

/** A piece of an answer: text, reasoning ("thinking") and, at the end, tool calls. */
export interface Piece {
  content: string;
  thinking: string;
  toolCalls?: OllamaToolCall[] | undefined;
}

export function chatLine(model: string, createdAt: string, p: Piece): OllamaChatLine {
  const message: OllamaMessage = { role: "assistant", content: p.content };
  if (p.thinking) message.thinking = p.thinking;
  if (p.toolCalls?.length) message.tool_calls = p.toolCalls;
  return { model, created_at: createdAt, message, done: false };
}

export function generateLine(model: string, createdAt: string, p: Piece): OllamaGenerateLine {
  // Ollama's order of fields: thinking (when there is any) before done.
  return {
    model,
    created_at: createdAt,
    response: p.content,
    ...(p.thinking ? { thinking: p.thinking } : {}),
    done: false,
  };
}

/** The last line (or the whole non-streamed answer when `p` holds all of it). */
export function chatDone(
  model: string,
  createdAt: string,
  reason: string,
  stats: OllamaStats,
  p?: Piece,
): OllamaChatLine & OllamaStats {
  const { done: _, ...line } = chatLine(model, createdAt, p ?? { content: "", thinking: "" });
  return { ...line, done: true, done_reason: reason, ...stats };
}

export function generateDone(
  model: string,
  createdAt: string,
  reason: string,
  stats: OllamaStats,
  p?: Piece,
): OllamaGenerateLine & OllamaStats {
  const { done: _, ...line } = generateLine(model, createdAt, p ?? { content: "", thinking: "" });
  return { ...line, done: true, done_reason: reason, ...stats };
}

/** The answer to an empty prompt or empty messages: the model is loaded (it is, where it is served). */
export function loadAnswer(
  kind: "chat" | "generate",
  model: string,
  createdAt: string,
  reason: "load" | "unload" = "load",
) {
  return kind === "chat"
    ? {
        model,
        created_at: createdAt,
        message: { role: "assistant", content: "" },
        done_reason: reason,
        done: true,
      }
    : { model, created_at: createdAt, response: "", done_reason: reason, done: true };
}

interface EmbeddingList {
  data?: { index?: number; embedding?: unknown }[];
  usage?: { prompt_tokens?: number };
}

/** OpenAI's embedding list → vectors in input order. */
export function vectors(list: unknown): number[][] {
  const data = (list as EmbeddingList | null)?.data;
  if (!Array.isArray(data)) throw new Error("the machine's answer has no embeddings");
  return [...data]
    .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
    .map((d) => {
      if (!Array.isArray(d.embedding))
        throw new Error("the machine answered an embedding that is not a list");
      return d.embedding as number[];
    });
}

/** POST /api/embed's answer. */
export function embedAnswer(model: string, list: unknown, totalMs: number): OllamaEmbedResponse {
  return {
    model,
    embeddings: vectors(list),
    total_duration: ns(totalMs),
    load_duration: 0,
    prompt_eval_count: (list as EmbeddingList).usage?.prompt_tokens ?? 0,
  };
}

/** POST /api/embeddings' answer. */
export function embeddingsAnswer(list: unknown): OllamaEmbeddingsResponse {
  return { embedding: vectors(list)[0] ?? [] };
}
