import type { ErrorBody } from "@beta9/protocol";
import type { Dispatcher } from "undici";
import type { ResponseSink } from "./response-sink.ts";
import { loadedUndici, loadUndici } from "./undici-lazy.ts";

/** Headers that describe one hop and never travel through a proxy. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

export interface ProxyOptions {
  /** Full upstream URL. */
  url: string;
  method?: "GET" | "POST";
  body?: string | Buffer | undefined;
  headers?: Record<string, string>;
  /** Time to the upstream's response headers (a cold model may take long to start answering). */
  headersTimeoutMs?: number;
  /** Longest silence between two body chunks. */
  bodyTimeoutMs?: number;
  dispatcher?: Dispatcher;
  /** Called once the upstream answered, with its status (for metrics). */
  onResponse?: (status: number) => void;
  /** Each chunk of the upstream's body as it passes (to count what goes out). */
  onChunk?: (chunk: Buffer) => void;
  /**
   * A trailer sent after a body passed on whole (HTTP/2, or HTTP/1.1 chunked): its value is known only
   * then; undefined sends none. The body then loses its content-length, as trailers need.
   */
  trailer?: { name: string; value: () => Promise<string | undefined> };
}

/**
 * Load what proxyRequest needs (undici) now, without waiting for it: called when a model starts, so its
 * first request does not wait for the load, which the model's own load hides.
 */
export function prepareProxy(): void {
  loadUndici().catch(() => {});
}

/**
 * Forward a request and stream the answer back chunk by chunk: nothing is buffered, a slow client
 * slows the upstream (a full socket pauses the upstream's reads until it drains), and a client that
 * goes away aborts the upstream request, so an engine stops generating for nobody. Upstream failures
 * become our JSON errors.
 *
 * On undici's dispatcher directly, with a handler of callbacks: no response stream, async iterator or
 * AbortController per request (`request()` and its body stream were a quarter of the agent's CPU on
 * the request path).
 */
export function proxyRequest(res: ResponseSink, opts: ProxyOptions): Promise<void> {
  // undici is loaded by the first request an agent proxies, not at its start (undici-lazy.ts).
  const undici = loadedUndici();
  if (!undici) return loadUndici().then(() => proxyRequest(res, opts));
  const url = new URL(opts.url);
  return new Promise<void>((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let clientGone = false;
    let paused = false;
    let sse = false;
    // Ended, not finished: over HTTP/2 (the gateway's channel) a stream the client reset reads as
    // "finished", and the engine would generate on for nobody.
    const onClose = () => {
      if (res.ended) return;
      clientGone = true;
      controller?.abort(new Error("client went away"));
    };
    const onDrain = () => {
      if (!paused) return;
      paused = false;
      controller?.resume();
    };
    res.on("close", onClose);
    res.on("drain", onDrain);
    const done = () => {
      res.off("close", onClose);
      res.off("drain", onDrain);
      resolve();
    };
    const fail = (err: Error) => {
      if (clientGone) res.destroy();
      else {
        const { status, body } = upstreamError(err);
        if (!res.headersSent) {
          res.head(status, { "content-type": "application/json" });
          res.end(JSON.stringify(body));
        } else if (sse) {
          // Mid-stream: tell an SSE client in its own framing, then end. Never hang.
          res.end(`data: ${JSON.stringify(body)}\n\n`);
        } else {
          // Cut off mid-body: a broken response, never a short one that parses.
          res.destroy(err);
        }
      }
      done();
    };
    const finish = async () => {
      try {
        const trailer = opts.trailer && !clientGone ? await opts.trailer.value() : undefined;
        res.end(undefined, trailer === undefined ? undefined : { [opts.trailer!.name]: trailer });
      } catch (err) {
        res.destroy(err as Error);
      }
      done();
    };
    (opts.dispatcher ?? undici.getGlobalDispatcher()).dispatch(
      {
        origin: url.origin,
        path: url.pathname + url.search,
        method: opts.method ?? "POST",
        body: opts.body ?? null,
        headers: opts.headers ?? null,
        headersTimeout: opts.headersTimeoutMs ?? 300_000,
        bodyTimeout: opts.bodyTimeoutMs ?? 120_000,
      },
      {
        onRequestStart(c) {
          controller = c;
          if (clientGone) c.abort(new Error("client went away"));
        },
        onResponseStart(_c, statusCode, headers) {
          opts.onResponse?.(statusCode);
          const pass = passOnHeaders(headers);
          sse = pass.sse;
          if (opts.trailer) {
            delete pass.headers["content-length"];
            pass.headers.trailer = opts.trailer.name;
          }
          // An event stream's headers go at once (a client waits on them); others ride with the first bytes.
          res.head(statusCode, pass.headers, { trailers: opts.trailer !== undefined, flush: sse });
        },
        onResponseData(c, chunk) {
          if (clientGone) return;
          opts.onChunk?.(chunk);
          if (!res.write(chunk)) {
            paused = true;
            c.pause();
          }
        },
        onResponseEnd() {
          void finish();
        },
        onResponseError(_c, err) {
          fail(err);
        },
      },
    );
  });
}

/**
 * The upstream's response headers as a proxy passes them on: no hop-by-hop or pseudo headers, and for
 * server-sent events the headers that keep every proxy and cache from buffering the stream. A body
 * passed on byte for byte keeps its `content-length` (no chunked framing); an event stream, whose
 * events a proxy may drop, loses it.
 */
export function passOnHeaders(upstream: Record<string, string | string[] | undefined>): {
  headers: Record<string, string | string[]>;
  sse: boolean;
} {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(upstream)) {
    if (v !== undefined && !k.startsWith(":") && !HOP_BY_HOP.has(k.toLowerCase())) headers[k] = v;
  }
  const sse = String(upstream["content-type"] ?? "").startsWith("text/event-stream");
  if (sse) {
    delete headers["content-length"];
    headers["cache-control"] = "no-cache, no-transform";
    headers["x-accel-buffering"] = "no";
  }
  return { headers, sse };
}

export function upstreamError(err: unknown): { status: number; body: ErrorBody } {
  const e = err as NodeJS.ErrnoException & { code?: string };
  // undici's errors by their codes: the same test as instanceof, without loading undici to make it.
  if (e.code === "UND_ERR_HEADERS_TIMEOUT" || e.code === "UND_ERR_BODY_TIMEOUT") {
    return {
      status: 504,
      body: {
        error: {
          code: "engine_timeout",
          message: "the engine did not answer in time; try again, or check the engine with /inference/status",
        },
      },
    };
  }
  if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET" || e.code === "UND_ERR_SOCKET") {
    return {
      status: 502,
      body: {
        error: {
          code: "engine_unavailable",
          message:
            "the engine is not answering; see /inference/status, and start it again with /inference/start",
        },
      },
    };
  }
  return {
    status: 502,
    body: { error: { code: "engine_unavailable", message: `the engine request failed: ${e.message}` } },
  };
}
