import { once } from "node:events";
import type { ErrorBody } from "@beta9/protocol";
import type { FastifyReply } from "fastify";
import { type Dispatcher, errors, request } from "undici";

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
 * Forward a request and stream the answer back chunk by chunk: nothing is buffered, a slow client
 * slows the upstream (write() → drain), and a client that goes away aborts the upstream request, so
 * an engine stops generating for nobody. Upstream failures become our JSON errors.
 */
export async function proxyRequest(reply: FastifyReply, opts: ProxyOptions): Promise<void> {
  const abort = new AbortController();
  const res = reply.raw;
  // writableEnded, not writableFinished: over HTTP/2 (the gateway's channel) a stream the client reset
  // reads as "finished", and the engine would generate on for nobody.
  const onClose = () => {
    if (!res.writableEnded) abort.abort(new Error("client went away"));
  };
  res.on("close", onClose);
  reply.hijack();
  let sse = false;
  try {
    const upstream = await request(opts.url, {
      method: opts.method ?? "POST",
      body: opts.body,
      headers: opts.headers,
      signal: abort.signal,
      headersTimeout: opts.headersTimeoutMs ?? 300_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 120_000,
      dispatcher: opts.dispatcher,
    });
    opts.onResponse?.(upstream.statusCode);
    const pass = passOnHeaders(upstream.headers);
    sse = pass.sse;
    if (opts.trailer) {
      delete pass.headers["content-length"];
      pass.headers.trailer = opts.trailer.name;
    }
    res.writeHead(upstream.statusCode, pass.headers);
    // An event stream's headers go at once (a client waits on them); others ride with the first bytes.
    if (sse) res.flushHeaders?.();
    for await (const chunk of upstream.body) {
      if (abort.signal.aborted) break;
      opts.onChunk?.(chunk);
      if (!res.write(chunk)) await Promise.race([once(res, "drain"), once(res, "close")]);
    }
    const trailer = opts.trailer && !abort.signal.aborted ? await opts.trailer.value() : undefined;
    if (trailer !== undefined) res.addTrailers({ [opts.trailer!.name]: trailer });
    res.end();
  } catch (err) {
    if (abort.signal.aborted) {
      res.destroy();
      return; // the client left: not an error
    }
    const { status, body } = upstreamError(err);
    if (!res.headersSent) {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    } else if (sse) {
      // Mid-stream: tell an SSE client in its own framing, then end. Never hang.
      res.end(`data: ${JSON.stringify(body)}\n\n`);
    } else {
      // Cut off mid-body: a broken response, never a short one that parses.
      res.destroy(err as Error);
    }
  } finally {
    res.off("close", onClose);
  }
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
  if (e instanceof errors.HeadersTimeoutError || e instanceof errors.BodyTimeoutError) {
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
  if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET" || e instanceof errors.SocketError) {
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
