import type { Completion, CompletionChunk, Embeddings, ModelInfo, SamplingOptions, Usage } from "./types.ts";

/*
 * The OpenAI-compatible wire format the gateway (and each agent's /v1) speaks, read defensively: a
 * field of the wrong type reads as absent rather than throwing deep inside a caller's loop.
 */

type Json = Record<string, unknown>;

const obj = (v: unknown): Json =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {};
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** The request body's sampling fields, snake_case, only those given. */
export function samplingFields(o: SamplingOptions): Json {
  const fields: Json = {
    max_tokens: o.maxTokens,
    temperature: o.temperature,
    top_p: o.topP,
    stop: o.stop,
    seed: o.seed,
    presence_penalty: o.presencePenalty,
    frequency_penalty: o.frequencyPenalty,
  };
  for (const [k, v] of Object.entries(fields)) if (v === undefined) delete fields[k];
  return { ...o.extra, ...fields };
}

export function usageOf(v: unknown): Usage | null {
  const u = obj(v);
  const prompt = num(u.prompt_tokens);
  const completion = num(u.completion_tokens);
  if (prompt === undefined && completion === undefined) return null;
  return {
    promptTokens: prompt ?? 0,
    completionTokens: completion ?? 0,
    totalTokens: num(u.total_tokens) ?? (prompt ?? 0) + (completion ?? 0),
  };
}

function firstChoice(body: Json): Json {
  return Array.isArray(body.choices) ? obj(body.choices[0]) : {};
}

/** A chat completion (`choices[0].message.content`) or a text completion (`choices[0].text`). */
export function completionOf(v: unknown): Completion {
  const body = obj(v);
  const choice = firstChoice(body);
  return {
    content: str(obj(choice.message).content) ?? str(choice.text) ?? "",
    model: str(body.model) ?? "",
    finishReason: str(choice.finish_reason) ?? null,
    usage: usageOf(body.usage),
    raw: v,
  };
}

/** A chunk of a streamed chat (`delta.content`) or text completion (`text`). */
export function chunkOf(v: unknown): CompletionChunk {
  const body = obj(v);
  const choice = firstChoice(body);
  return {
    content: str(obj(choice.delta).content) ?? str(choice.text) ?? "",
    model: str(body.model) ?? "",
    finishReason: str(choice.finish_reason) ?? null,
    usage: usageOf(body.usage),
    raw: v,
  };
}

export function embeddingsOf(v: unknown): Embeddings {
  const body = obj(v);
  const rows = Array.isArray(body.data) ? body.data.map(obj) : [];
  rows.sort((a, b) => (num(a.index) ?? 0) - (num(b.index) ?? 0));
  const embeddings = rows.map((r) => (Array.isArray(r.embedding) ? (r.embedding as number[]) : []));
  const u = obj(body.usage);
  const prompt = num(u.prompt_tokens);
  return {
    embedding: embeddings[0] ?? [],
    embeddings,
    model: str(body.model) ?? "",
    usage: prompt === undefined ? null : { promptTokens: prompt, totalTokens: num(u.total_tokens) ?? prompt },
  };
}

export function modelsOf(v: unknown): ModelInfo[] {
  const data = obj(v).data;
  if (!Array.isArray(data)) return [];
  return data
    .map(obj)
    .filter((m) => typeof m.id === "string")
    .map((m) => ({ id: m.id as string, ownedBy: str(m.owned_by) ?? "" }));
}
