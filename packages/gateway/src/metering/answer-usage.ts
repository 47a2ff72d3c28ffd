import type { TokenUsage } from "@beta9/protocol";

export type EventKind =
  /** `[DONE]`: the stream's end. */
  | "done"
  /** The chunk `stream_options.include_usage` adds: no choices, only `usage`. */
  | "usage"
  /** An error event: the engine failed or the machine went away. */
  | "error"
  /** Anything else: a chunk of the answer. */
  | "chunk";

/**
 * What one server-sent event of an OpenAI stream is. Only events that name `usage` or `error` are
 * parsed; the rest (nearly all) are told apart by a substring test, so tokens pass at little cost.
 */
export function inspectEvent(data: string): { kind: EventKind; usage?: TokenUsage } {
  if (data.trim() === "[DONE]") return { kind: "done" };
  if (!data.includes('"usage"') && !data.includes('"error"')) return { kind: "chunk" };
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return { kind: "chunk" };
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return { kind: "chunk" };
  const o = v as { error?: unknown; usage?: unknown; choices?: unknown };
  if (o.error !== undefined && o.error !== null) return { kind: "error" };
  const usage = tokenUsage(o.usage);
  if (!usage) return { kind: "chunk" };
  const noChoices = !Array.isArray(o.choices) || o.choices.length === 0;
  return { kind: noChoices ? "usage" : "chunk", usage };
}

/** `usage` if it is an object with numeric counts. */
export function tokenUsage(v: unknown): TokenUsage | undefined {
  if (!v || typeof v !== "object") return undefined;
  const u = v as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : undefined);
  const prompt = num(u.prompt_tokens);
  const completion = num(u.completion_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  return { prompt_tokens: prompt, completion_tokens: completion };
}

/**
 * The `usage` of a JSON answer passed on chunk by chunk. The whole answer is kept up to `keepBytes`
 * and parsed at the end; past that (large embeddings) only its tail is kept, where OpenAI-compatible
 * servers put `usage`, and the last `"usage":{…}` in it is read.
 */
export class JsonUsageTap {
  readonly #keepBytes: number;
  readonly #tailBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #overflow = false;
  #tail = Buffer.alloc(0);

  constructor(opts: { keepBytes?: number; tailBytes?: number } = {}) {
    this.#keepBytes = opts.keepBytes ?? 8 * 1024 * 1024;
    this.#tailBytes = opts.tailBytes ?? 64 * 1024;
  }

  push(chunk: Buffer): void {
    this.#size += chunk.length;
    if (!this.#overflow && this.#size <= this.#keepBytes) {
      this.#parts.push(chunk);
      return;
    }
    if (!this.#overflow) {
      this.#overflow = true;
      this.#tail = Buffer.concat(this.#parts);
      this.#parts = [];
    }
    const joined = Buffer.concat([this.#tail, chunk]);
    this.#tail = joined.subarray(Math.max(0, joined.length - this.#tailBytes));
  }

  usage(): TokenUsage | undefined {
    if (!this.#overflow) {
      try {
        return tokenUsage(
          (JSON.parse(Buffer.concat(this.#parts).toString("utf8")) as { usage?: unknown })?.usage,
        );
      } catch {
        return undefined;
      }
    }
    const text = this.#tail.toString("utf8");
    const all = [...text.matchAll(/"usage"\s*:\s*(\{[^{}]*\})/g)];
    try {
      return tokenUsage(JSON.parse(all.at(-1)?.[1] ?? "null"));
    } catch {
      return undefined;
    }
  }
}
