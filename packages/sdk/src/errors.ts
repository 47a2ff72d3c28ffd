import type { ErrorCode } from "@beta9/protocol";

/** Base of every error the SDK throws on purpose; `instanceof Beta9SdkError` catches them all. */
export class Beta9SdkError extends Error {
  override name = "Beta9SdkError";
}

/** The code used when the gateway's answer carries none (a proxy's HTML page, an empty body). */
const codeForStatus = (status: number): ErrorCode | "http_error" => {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "rate_limited";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "http_error";
  }
};

/**
 * The gateway answered with an error status. `code` is the stable code from the body (see
 * `ErrorCodes` in the protocol); switch on it, not on the message, which is for people.
 */
export class ApiError extends Beta9SdkError {
  override name = "ApiError";
  readonly status: number;
  /** A protocol `ErrorCode`, or a newer code this SDK does not know yet. */
  readonly code: ErrorCode | (string & {});
  /** Seconds the gateway asked us to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** Builds the error of the right family from a response's status, headers and body text. */
  static fromResponse(status: number, statusText: string, headers: Headers, bodyText: string): ApiError {
    let code: string = codeForStatus(status);
    let message = `the gateway answered ${status}${statusText ? ` ${statusText}` : ""}`;
    const parsed = parseErrorBody(bodyText);
    if (parsed) {
      code = parsed.code || code;
      message = parsed.message;
    }
    const retryAfter = Number(headers.get("retry-after"));
    const retry = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
    const Family = errorFamily(status);
    return new Family(status, code, message, retry);
  }
}

export class BadRequestError extends ApiError {
  override name = "BadRequestError";
}
/** 401: the API key is missing, unknown or revoked. */
export class AuthenticationError extends ApiError {
  override name = "AuthenticationError";
}
/** 403: the key is valid but lacks the scope the call needs. */
export class PermissionDeniedError extends ApiError {
  override name = "PermissionDeniedError";
}
export class NotFoundError extends ApiError {
  override name = "NotFoundError";
}
export class ConflictError extends ApiError {
  override name = "ConflictError";
}
export class RateLimitError extends ApiError {
  override name = "RateLimitError";
}
/** 5xx: the gateway's fault, not the caller's. */
export class InternalServerError extends ApiError {
  override name = "InternalServerError";
}

type ApiErrorClass = new (status: number, code: string, message: string, retry?: number) => ApiError;

function errorFamily(status: number): ApiErrorClass {
  if (status === 400) return BadRequestError;
  if (status === 401) return AuthenticationError;
  if (status === 403) return PermissionDeniedError;
  if (status === 404) return NotFoundError;
  if (status === 409) return ConflictError;
  if (status === 429) return RateLimitError;
  if (status >= 500) return InternalServerError;
  return ApiError;
}

function parseErrorBody(text: string): { code: string; message: string } | undefined {
  try {
    return errorOf(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * The `{code, message}` of an error body: ours (`{"error": {"code", "message"}}`), OpenAI's (whose
 * `code` may be null beside a `type`), or Ollama's (`{"error": "text"}`, which has no code).
 */
export function errorOf(body: unknown): { code: string; message: string } | undefined {
  if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
  const error: unknown = body.error;
  if (typeof error === "string" && error !== "") return { code: "", message: error };
  if (typeof error !== "object" || error === null) return undefined;
  const message = "message" in error && typeof error.message === "string" ? error.message : undefined;
  if (!message) return undefined;
  const code = "code" in error && typeof error.code === "string" && error.code ? error.code : undefined;
  const type = "type" in error && typeof error.type === "string" && error.type ? error.type : undefined;
  return { code: code ?? type ?? "", message };
}

/**
 * No HTTP answer came back: the gateway is down, the URL is wrong, or the network is in the way.
 * The message says what to check; `reason` is the short cause ("connection refused").
 */
export class ConnectionError extends Beta9SdkError {
  override name = "ConnectionError";
  /** The gateway base URL the client was configured with. */
  readonly baseUrl: string;
  readonly reason: string;

  constructor(baseUrl: string, reason: string, options?: { cause?: unknown }) {
    super(
      `cannot reach the gateway at ${baseUrl} (${reason}); check the gateway URL and that the gateway is running`,
      options,
    );
    this.baseUrl = baseUrl;
    this.reason = reason;
  }
}

/**
 * A streamed answer ended with an error event instead of its end, e.g. `worker_lost` when the machine
 * serving it went away, or a pull that failed on the machine. `status` is that of the response
 * (200: the stream had begun); `code` and `message` are the event's.
 */
export class StreamError extends ApiError {
  override name = "StreamError";
}

/** The connection dropped after the answer had begun, before it ended. */
export class ConnectionLostError extends ConnectionError {
  override name = "ConnectionLostError";
  constructor(baseUrl: string, reason: string, options?: { cause?: unknown }) {
    super(baseUrl, reason, options);
    this.message = `the connection to the gateway at ${baseUrl} closed before the answer ended (${reason}); retry the request, and if it keeps happening check the gateway's log`;
  }
}

/** The gateway took longer than `timeoutMs` to answer. */
export class ConnectionTimeoutError extends ConnectionError {
  override name = "ConnectionTimeoutError";
  constructor(baseUrl: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(baseUrl, `no answer within ${timeoutMs} ms`, options);
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  UND_ERR_SOCKET: "connection closed by the other side",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_HEADERS_TIMEOUT: "no answer headers in time",
  UND_ERR_BODY_TIMEOUT: "the answer stalled past fetch's body timeout (300 s)",
};

/** Turns what fetch threw (undici: TypeError "fetch failed" with the socket error as cause) into words. */
export function describeNetworkFailure(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  const code = errorCode(cause) ?? errorCode(firstOf(cause));
  if (code) return REASONS[code] ?? code;
  if (cause instanceof Error && cause.message) return cause.message;
  return String(cause);
}

function errorCode(value: unknown): string | undefined {
  if (typeof value === "object" && value !== null && "code" in value && typeof value.code === "string") {
    return value.code;
  }
  return undefined;
}

/** Happy-eyeballs failures arrive as an AggregateError, one error per address tried. */
function firstOf(value: unknown): unknown {
  return value instanceof AggregateError ? value.errors[0] : undefined;
}
