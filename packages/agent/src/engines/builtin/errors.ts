import { toErrorReply } from "@beta9/http/errors";
import type { FastifyError, FastifyInstance } from "fastify";

/**
 * Errors leave the engine in OpenAI's shape, `{"error":{"message","type","param","code"}}`, which is
 * also a superset of Beta9's `{"error":{"code","message"}}`: OpenAI clients and our agent both read it.
 */
export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string;
    [extra: string]: unknown;
  };
}

export class EngineError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | null;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: string,
    message: string,
    opts: { param?: string; extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "EngineError";
    this.status = status;
    this.code = code;
    this.param = opts.param ?? null;
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }

  toBody(): OpenAIErrorBody {
    return {
      error: {
        message: this.message,
        type: errorType(this.status),
        param: this.param,
        code: this.code,
        ...this.extra,
      },
    };
  }
}

export const modelNotFound = (name: string): EngineError =>
  new EngineError(
    404,
    "model_not_found",
    `the model \`${name}\` is not loaded in this engine; load it with POST /admin/models or list loaded ones with GET /v1/models`,
    { param: "model" },
  );

export const badRequest = (message: string, param?: string): EngineError =>
  new EngineError(400, "bad_request", message, param === undefined ? {} : { param });

export function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

export function toOpenAIError(err: unknown): {
  status: number;
  body: OpenAIErrorBody;
  headers: Record<string, string>;
} {
  if (err instanceof EngineError) return { status: err.status, body: err.toBody(), headers: err.headers };
  const { status, body } = toErrorReply(err);
  return {
    status,
    body: {
      error: { message: body.error.message, type: errorType(status), param: null, code: body.error.code },
    },
    headers: {},
  };
}

/** Fastify's own errors (bad JSON, failed validation, unknown route) leave in the same shape as ours. */
export function installOpenAIErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | EngineError, req, reply) => {
    const { status, body, headers } = toOpenAIError(err);
    if (status >= 500 && status !== 503 && status !== 507) req.log.error({ err }, "request failed");
    void reply.status(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: {
        message: `no route ${req.method} ${req.url.split("?")[0]}; the builtin engine serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /admin/models and /health`,
        type: "invalid_request_error",
        param: null,
        code: "not_found",
      },
    } satisfies OpenAIErrorBody);
  });
}
