import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerResponse, ServerHttp2Stream } from "node:http2";

/**
 * Where a proxied answer goes: a response of Node's HTTP/1.1 server (or of HTTP/2's compatibility
 * layer), or a bare HTTP/2 stream. The proxy writes through this and nothing else, so the agent's
 * channel can answer on the stream itself, without a request and response object per request.
 */
export interface ResponseSink {
  readonly headersSent: boolean;
  /** end() was called: a close after it is the answer's own, not a client that left. */
  readonly ended: boolean;
  /** Status and headers; `trailers`: end() will send trailers; `flush`: send the headers now. */
  head(status: number, headers: OutgoingHttpHeaders, opts?: { trailers?: boolean; flush?: boolean }): void;
  /** False when the client's side is full: wait for "drain". */
  write(chunk: Buffer): boolean;
  end(body?: string, trailers?: Record<string, string>): void;
  /** A broken answer, never a short one that parses. */
  destroy(err?: Error): void;
  on(event: "close" | "drain", listener: () => void): void;
  off(event: "close" | "drain", listener: () => void): void;
}

/** A sink over a response of node:http (or HTTP/2's compatibility layer). */
export function responseSink(res: ServerResponse | Http2ServerResponse): ResponseSink {
  const r = res as ServerResponse;
  return {
    get headersSent() {
      return r.headersSent;
    },
    get ended() {
      return r.writableEnded;
    },
    head(status, headers, opts) {
      r.writeHead(status, headers);
      if (opts?.flush) r.flushHeaders();
    },
    write: (chunk) => r.write(chunk),
    end(body, trailers) {
      if (trailers) r.addTrailers(trailers);
      if (body === undefined) r.end();
      else r.end(body);
    },
    destroy: (err) => r.destroy(err),
    on: (event, listener) => r.on(event, listener),
    off: (event, listener) => r.off(event, listener),
  };
}

/**
 * A sink over a bare HTTP/2 stream: `respond()` with the status and `fixed` headers (e.g. the
 * request's id) merged in, trailers after the body when head() said so.
 */
export function http2StreamSink(stream: ServerHttp2Stream, fixed: OutgoingHttpHeaders = {}): ResponseSink {
  let waitsForTrailers = false;
  // Our own flag: a stream the peer resets is ended by Node too (its writable side closed), which
  // must not read as an answer that was given.
  let ended = false;
  return {
    get headersSent() {
      return stream.headersSent;
    },
    get ended() {
      return ended;
    },
    head(status, headers, opts) {
      // Reset by the peer an instant ago (its "close" not yet emitted): respond() would throw, and
      // nobody is there to answer. The close that follows ends the request.
      if (stream.destroyed || stream.closed) return;
      waitsForTrailers = opts?.trailers === true;
      // HTTP/2 sends headers as soon as respond() is called: `flush` is always so here.
      stream.respond({ ...headers, ...fixed, ":status": status }, { waitForTrailers: waitsForTrailers });
    },
    write: (chunk) => stream.write(chunk),
    end(body, trailers) {
      ended = true;
      if (waitsForTrailers) stream.once("wantTrailers", () => stream.sendTrailers(trailers ?? {}));
      if (body === undefined) stream.end();
      else stream.end(body);
    },
    destroy: (err) => stream.destroy(err),
    on: (event, listener) => stream.on(event, listener),
    off: (event, listener) => stream.off(event, listener),
  };
}
