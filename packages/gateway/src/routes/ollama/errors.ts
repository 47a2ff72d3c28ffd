import { toErrorReply } from "@beta9/http";
import { Beta9Error } from "@beta9/protocol";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { InferenceError } from "../../inference/errors.ts";

/** An error answered in Ollama's shape, `{"error":"message"}`, with its HTTP status. */
export class OllamaError extends Error {
  readonly status: number;
  /** Seconds for the Retry-After header (rate limits). */
  readonly retryAfterS: number | undefined;
  constructor(status: number, message: string, opts: { retryAfterS?: number } = {}) {
    super(message);
    this.name = "OllamaError";
    this.status = status;
    this.retryAfterS = opts.retryAfterS;
  }
}

export const badRequest = (message: string) => new OllamaError(400, message);

/**
 * Ollama says `model "x" not found, try pulling it first`; clients match on `not found`. Here a model
 * is found when the caller's workspace deployed it or a machine serves it for everyone, so the hint
 * names the workspace's models and how to add one.
 */
export function modelNotFound(model: string, known: readonly string[]): OllamaError {
  const here = known.length ? ` (its models: ${known.join(", ")})` : "";
  return new OllamaError(
    404,
    `model "${model}" not found in this workspace${here}; pull it first (ollama pull ${model}, with an admin key) or deploy it with \`b9 model deploy ${model} --source SRC\``,
  );
}

/** Our errors (auth, bad JSON, body too large, …) in Ollama's shape, so Ollama clients raise them. */
export function ollamaErrorReply(err: unknown): { status: number; body: { error: string } } {
  if (err instanceof OllamaError) return { status: err.status, body: { error: err.message } };
  if (err instanceof InferenceError) {
    const message =
      err.failure === "model_not_found" ? modelNotFound(err.model, err.known).message : err.message;
    return { status: err.status, body: { error: message } };
  }
  if (err instanceof Beta9Error) return { status: err.status, body: { error: err.message } };
  const { status, body } = toErrorReply(err as FastifyError);
  return { status, body: { error: body.error.message } };
}

/** The Ollama routes' error handler (set inside their plugin only). */
export function ollamaErrorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = ollamaErrorReply(err);
  if (status >= 500 && !(err instanceof OllamaError || err instanceof InferenceError))
    req.log.error({ err }, "request failed");
  if ((err instanceof OllamaError || err instanceof InferenceError) && err.retryAfterS !== undefined)
    void reply.header("retry-after", String(err.retryAfterS));
  else if (status === 503) void reply.header("retry-after", "2");
  void reply.status(status).send(body);
}

/**
 * The message of an agent's or engine's error body: OpenAI's `{"error":{"message"}}`, ours
 * `{"error":{"code","message"}}`, or Ollama's `{"error":"…"}`.
 */
export function upstreamMessage(text: string, status: number): { message: string; code?: string } {
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    const e = body.error;
    if (typeof e === "string") return { message: e };
    if (e && typeof e === "object") {
      const { message, code } = e as { message?: unknown; code?: unknown };
      if (typeof message === "string") return typeof code === "string" ? { message, code } : { message };
    }
    if (typeof body.message === "string") return { message: body.message };
  } catch {}
  return { message: text.trim().slice(0, 500) || `the machine answered ${status}` };
}
