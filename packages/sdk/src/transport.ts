import { UNTRUSTED_CERTIFICATE_CODES } from "@beta9/protocol";
import { ApiError, ConnectionError, ConnectionTimeoutError, describeNetworkFailure } from "./errors.ts";

export type Fetch = typeof fetch;

/**
 * The core knows nothing of Node: it runs in the dashboard with the browser's fetch, and in Node with
 * the patient fetch of transport-node.ts (which the SDK's client passes).
 */
export interface TransportOptions {
  baseUrl: string;
  apiKey?: string | undefined;
  /** Default: the global fetch. */
  fetch?: Fetch | undefined;
  timeoutMs?: number | undefined;
  /** Headers added to each call (the dashboard's CSRF token on unsafe methods). */
  headers?: ((call: Call) => Record<string, string>) | undefined;
}

/**
 * The gateway's certificate could not be verified (an unknown CA, self-signed, expired, or for
 * another name); `caFile` (the CLI's --ca-file or BETA9_CA_FILE) names the CA to trust.
 */
export class UntrustedCertificateError extends ConnectionError {
  override name = "UntrustedCertificateError";
  constructor(baseUrl: string, reason: string, options?: { cause?: unknown }) {
    super(baseUrl, reason, options);
    this.message = `the gateway's certificate at ${baseUrl} is not trusted (${reason}): pass the CA that signed it with caFile (b9: --ca-file or BETA9_CA_FILE)`;
  }
}

/** Per-call options every SDK method takes as its last argument. */
export interface RequestOptions {
  /** Cancels the call; the promise then rejects with the signal's reason, not an SDK error. */
  signal?: AbortSignal;
}

type QueryValue = string | number | boolean | undefined;

export interface Call {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, QueryValue> | undefined;
  body?: unknown;
  options?: RequestOptions | undefined;
  /** Overrides the client's timeout for this call (inference waits longer: a cold start loads the model). */
  timeoutMs?: number | undefined;
  /** The Accept header; JSON unless said. */
  accept?: string | undefined;
  /** Bytes sent as they are (application/octet-stream) instead of `body` as JSON. */
  bytes?: Uint8Array | undefined;
}

/** Long enough for a loaded gateway, short enough that a dead one is noticed by a person waiting. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Accepts "https://gw.example:1994", "gw.example:1994/" or "127.0.0.1:1994" (http assumed). */
export function normalizeBaseUrl(baseUrl: string): string {
  const trimmed = baseUrl.trim().replace(/\/+$/, "");
  if (trimmed === "")
    throw new TypeError("baseUrl is empty; pass the gateway URL, e.g. http://127.0.0.1:1994");
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TypeError(
      `baseUrl ${JSON.stringify(baseUrl)} is not a URL; expected e.g. http://127.0.0.1:1994`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`baseUrl must be http or https, not ${url.protocol}`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * One path segment from a caller-supplied id. Encoded so "a/b" stays one segment; "." and ".."
 * are refused because URL parsing would resolve them and the request would reach another route.
 */
export function segment(id: string): string {
  if (id === "" || id === "." || id === "..") throw new TypeError(`invalid id ${JSON.stringify(id)}`);
  return encodeURIComponent(id);
}

/** The certificate-verification code somewhere in what fetch threw, if that is why it failed. */
function untrustedCertificate(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE_CODES.has(code))
      return code === "ERR_TLS_CERT_ALTNAME_INVALID" ? "it is for another name" : code;
  }
  return undefined;
}

/** What fetch threw, as the SDK error that says what to check. */
function networkError(baseUrl: string, error: unknown): ConnectionError {
  const untrusted = untrustedCertificate(error);
  if (untrusted) return new UntrustedCertificateError(baseUrl, untrusted, { cause: error });
  return new ConnectionError(baseUrl, describeNetworkFailure(error), { cause: error });
}

/** Sends JSON requests to the gateway and turns every failure into an SDK error. */
export class Transport {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly #apiKey: string | undefined;
  readonly #fetch: Fetch;
  readonly #headers: TransportOptions["headers"];

  constructor(options: TransportOptions) {
    this.baseUrl = normalizeBaseUrl(options.baseUrl);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#apiKey = options.apiKey;
    // Looked up per call, not bound at construction: tests and the browser may replace it later.
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#headers = options.headers;
  }

  get<T>(path: string, query?: Record<string, QueryValue>, options?: RequestOptions): Promise<T> {
    return this.request<T>({ method: "GET", path, query, options });
  }

  post<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>({ method: "POST", path, body, options });
  }

  patch<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>({ method: "PATCH", path, body, options });
  }

  delete<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>({ method: "DELETE", path, options });
  }

  async request<T>(call: Call): Promise<T> {
    const timeoutMs = call.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const callerSignal = call.options?.signal;
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;

    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(this.#url(call), { ...this.#init(call), signal });
      text = await response.text();
    } catch (error) {
      // Cancellation is the caller's decision, not a failure: hand back their reason untouched.
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (timeout.aborted) throw new ConnectionTimeoutError(this.baseUrl, timeoutMs, { cause: error });
      throw networkError(this.baseUrl, error);
    }

    if (!response.ok)
      throw ApiError.fromResponse(response.status, response.statusText, response.headers, text);
    if (response.status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        response.status,
        "invalid_response",
        `the gateway at ${this.baseUrl} answered ${call.method} ${call.path} with a body that is not JSON; check that the URL points at a Beta9 gateway`,
      );
    }
  }

  /**
   * Sends a call whose answer is read as a stream. The timeout covers only the wait for the answer
   * to begin; then the body runs until it ends or `signal` aborts, which closes the connection.
   * Resolves to a successful response; an error status is read and thrown as an ApiError.
   */
  async open(call: Call): Promise<Response> {
    const timeoutMs = call.timeoutMs ?? this.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const callerSignal = call.options?.signal;
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout.signal]) : timeout.signal;
    let response: Response;
    try {
      response = await this.#fetch(this.#url(call), { ...this.#init(call), signal });
      if (!response.ok) {
        const text = await response.text();
        throw ApiError.fromResponse(response.status, response.statusText, response.headers, text);
      }
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (timeout.signal.aborted) throw new ConnectionTimeoutError(this.baseUrl, timeoutMs, { cause: error });
      throw networkError(this.baseUrl, error);
    } finally {
      clearTimeout(timer);
    }
    return response;
  }

  #url(call: Call): URL {
    const url = new URL(this.baseUrl + call.path);
    for (const [key, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  #init(call: Call): {
    method: string;
    headers: Record<string, string>;
    body: string | Uint8Array<ArrayBuffer> | undefined;
  } {
    const headers: Record<string, string> = {
      accept: call.accept ?? "application/json",
      ...this.#headers?.(call),
    };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (call.bytes !== undefined) {
      headers["content-type"] = "application/octet-stream";
      // Bytes the SDK made itself; the DOM fetch types want them over a plain ArrayBuffer.
      body = call.bytes as Uint8Array<ArrayBuffer>;
    } else if (call.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    return { method: call.method, headers, body };
  }
}
