import type { Duplex } from "node:stream";
import { Beta9Error, type ErrorBody } from "@beta9/protocol/errors";
// The two protocol modules it needs, not the index: the builtin engine loads this and none of the other schemas.
import { REQUEST_ID_HEADER } from "@beta9/protocol/headers";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { nodeHttp } from "./node-http.ts";

/** Deeper JSON than any API body needs; far below where JSON.stringify would overflow the stack. */
export const MAX_JSON_DEPTH = 100;

/**
 * Every error leaves as `{"error":{"code","message"}}` with a stable code. Fastify's own errors
 * (validation, bad JSON, body too large) are mapped to ours so clients never see a framework shape.
 * JSON nested deeper than MAX_JSON_DEPTH is refused at parsing, before a handler could overflow the
 * stack serialising it (a 500 and a stack trace per request).
 */
export function installErrorHandling(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    const text = body.toString();
    const tooDeep = jsonDepthRefusal(text);
    if (tooDeep) {
      done(tooDeep, undefined);
      return;
    }
    parseJson(req, text, done);
  });
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

const NOT_JSON = "the request body is not valid JSON; send a JSON object";

/** The refusal of a body that nests JSON deeper than MAX_JSON_DEPTH, or undefined for one that does not. */
export function jsonDepthRefusal(text: string): Beta9Error | undefined {
  return jsonDepthExceeds(text, MAX_JSON_DEPTH)
    ? new Beta9Error(
        "bad_request",
        `the request body nests JSON deeper than ${MAX_JSON_DEPTH} levels; send flatter JSON`,
      )
    : undefined;
}

/**
 * A JSON request body read without a framework (the agent channel's inference requests): refused
 * as the routes refuse it, too deep or not JSON, with a Beta9Error.
 */
export function parseJsonBody(text: string): unknown {
  const tooDeep = jsonDepthRefusal(text);
  if (tooDeep) throw tooDeep;
  try {
    return JSON.parse(text);
  } catch {
    throw new Beta9Error("bad_request", NOT_JSON);
  }
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
          error: { code: "bad_request", message: NOT_JSON },
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
export function replyFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorReply(err);
  // Refused before the hooks ran (a malformed URL): its answer still names its request.
  reply.raw.setHeader(REQUEST_ID_HEADER, req.id);
  void reply.status(status).send(body);
}

/** Whether JSON text opens more than `max` objects or arrays inside each other (strings skipped). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character, a quote included
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * For the server's `clientError` (fastify's `clientErrorHandler`): requests Node's HTTP parser
 * refuses before any route sees them (headers too large, malformed, too slow) are answered in our
 * error shape too, then the connection is closed as Node would.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "the request headers are too large; send fewer or shorter headers (at most 16 KiB in all)"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "the request took too long to arrive; send it again"]
        : [400, "the request is not valid HTTP; check the client sending it"];
  const json = JSON.stringify({ error: { code: "bad_request", message } } satisfies ErrorBody);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}
