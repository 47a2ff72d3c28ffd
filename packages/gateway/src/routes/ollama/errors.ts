import { toErrorReply } from "@beta9/http";
import { Beta9Error } from "@beta9/protocol";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

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
 * Ollama says `model "x" not found, try pulling it first`; clients match on `not found`. Beta9 serves
 * a model where a machine has pulled and started it, so the hint says how to do that.
 */
export function modelNotFound(model: string, served: readonly string[]): OllamaError {
  const known = served.length ? ` (served now: ${served.join(", ")})` : "";
  return new OllamaError(
    404,
    `model "${model}" not found: no machine serves it${known}; pull and start it on a machine with POST /inference/pull and POST /inference/start`,
  );
}

/** Our errors (auth, bad JSON, body too large, …) in Ollama's shape, so Ollama clients raise them. */
export function ollamaErrorReply(err: unknown): { status: number; body: { error: string } } {
  if (err instanceof OllamaError) return { status: err.status, body: { error: err.message } };
  if (err instanceof Beta9Error) return { status: err.status, body: { error: err.message } };
  const { status, body } = toErrorReply(err as FastifyError);
  return { status, body: { error: body.error.message } };
}

/** The Ollama routes' error handler (set inside their plugin only). */
export function ollamaErrorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = ollamaErrorReply(err);
  if (status >= 500 && !(err instanceof OllamaError)) req.log.error({ err }, "request failed");
  if (err instanceof OllamaError && err.retryAfterS !== undefined)
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
