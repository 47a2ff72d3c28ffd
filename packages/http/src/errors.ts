import { Beta9Error, type ErrorBody } from "@beta9/protocol";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * Every error leaves as `{"error":{"code","message"}}` with a stable code. Fastify's own errors
 * (validation, bad JSON, body too large) are mapped to ours so clients never see a framework shape.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Beta9Error, req: FastifyRequest, reply: FastifyReply) => {
    const { status, body } = toErrorReply(err);
    if (status >= 500) req.log.error({ err }, "request failed");
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: {
        code: "not_found",
        message: `no route ${req.method} ${req.url.split("?")[0]}; see the API reference in the README`,
      },
    } satisfies ErrorBody);
  });
}

export function toErrorReply(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof Beta9Error) return { status: err.status, body: err.toBody() };
  const e = err as FastifyError;
  if (e.validation) {
    const where = e.validationContext ?? "request";
    return {
      status: 400,
      body: {
        error: {
          code: "bad_request",
          message: `invalid ${where}: ${e.message.replace(/^(body|querystring|params|headers)\/?/, "")}`,
        },
      },
    };
  }
  switch (e.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return {
        status: 400,
        body: {
          error: { code: "bad_request", message: "the request body is not valid JSON; send a JSON object" },
        },
      };
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return {
        status: 413,
        body: {
          error: {
            code: "payload_too_large",
            message: "the request body is too large; send less than 1 MiB",
          },
        },
      };
    case "FST_ERR_MAX_PARAM_LENGTH":
      return {
        status: 400,
        body: {
          error: {
            code: "bad_request",
            message: "a part of the path is too long; names and ids are shorter",
          },
        },
      };
    case "FST_ERR_BAD_URL":
      return {
        status: 400,
        body: {
          error: {
            code: "bad_request",
            message: "the path is not a valid URL; encode names as URL segments",
          },
        },
      };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return {
        status: 415,
        body: { error: { code: "bad_request", message: "unsupported content type; send application/json" } },
      };
  }
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, body: { error: { code: "bad_request", message: e.message } } };
  }
  return {
    status: 500,
    body: { error: { code: "internal", message: "internal error; the server log has the details" } },
  };
}

/** For fastify's `frameworkErrors`: errors found while routing, before any handler, in our shape too. */
export function replyFrameworkError(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorReply(err);
  void reply.status(status).send(body);
}
