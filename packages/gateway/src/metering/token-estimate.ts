import type { TokenNeed } from "./metering.ts";

/** What a generation that names no max_tokens is reserved: engines' usual cap, or its context's rest. */
export const DEFAULT_COMPLETION_RESERVE = 512;
/** About four characters make a token in the languages these models mostly see. */
const CHARS_PER_TOKEN = 4;
/** A chat template adds a few tokens around each message (role, separators). */
const TOKENS_PER_MESSAGE = 3;

/**
 * What an OpenAI-shaped request (the gateway's upstream body, the Ollama API's too once translated)
 * may use, estimated before it runs: its text's characters over four (tokenizing it would cost as
 * much as the engine's own pass), and its max_tokens, or a default, for each answer it asks for.
 */
export function estimateNeed(body: Record<string, unknown>, path: string): TokenNeed {
  const chars = { n: 0, messages: 0 };
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      chars.messages++;
      if (m && typeof m === "object") textOf((m as { content?: unknown }).content, chars);
    }
  }
  textOf(body.prompt, chars);
  textOf(body.suffix, chars);
  textOf(body.input, chars);
  if (body.tools !== undefined) chars.n += JSON.stringify(body.tools)?.length ?? 0;
  const prompt = Math.ceil(chars.n / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * chars.messages;
  if (path === "/v1/embeddings") return { prompt, completion: 0 };
  const n = typeof body.n === "number" && Number.isInteger(body.n) ? Math.min(Math.max(body.n, 1), 128) : 1;
  const max = [body.max_completion_tokens, body.max_tokens].find(
    (v): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0,
  );
  return { prompt, completion: n * Math.round(max ?? DEFAULT_COMPLETION_RESERVE) };
}

/** Characters of text in a prompt, message content or input: strings, token arrays, text parts. */
function textOf(v: unknown, into: { n: number }): void {
  if (typeof v === "string") into.n += v.length;
  // A token id counts as a token's worth of characters.
  else if (typeof v === "number") into.n += CHARS_PER_TOKEN;
  else if (Array.isArray(v)) for (const x of v) textOf(x, into);
  else if (v && typeof v === "object") {
    // Content parts: text counts; images are the engine's to count (they are no text).
    const part = v as { type?: unknown; text?: unknown };
    if (typeof part.text === "string") into.n += part.text.length;
  }
}
