import http2 from "node:http2";
import type { AgentLink, MachineFilter } from "../machines/registry.ts";
import { requestOverHttp } from "./http-request.ts";
import type { Router } from "./router.ts";

const MAX_ATTEMPTS = 3;
/** An agent's "not served here" answer is a short JSON error; a longer 404 body is someone else's. */
const NOT_SERVED_MAX_BYTES = 16 * 1024;

export interface AgentRequestInit {
  /** Default POST (with `body`); a GET sends no body. */
  method?: "GET" | "POST";
  path: string;
  body: string;
  headers: Record<string, string>;
  /** Time to the agent's response headers (a busy engine may take long to start answering). */
  headersTimeoutMs: number;
  /** Aborting it cancels the request wherever it is: waiting for headers or reading the answer. */
  signal?: AbortSignal | undefined;
  /** Answers that mean "this machine cannot serve it now" (its engine is down): try another. */
  retryOn?: ((status: number) => boolean) | undefined;
}

/** An agent's answer, read by the gateway rather than piped: headers now, the body as it comes. */
export interface AgentResponse {
  machineId: string;
  status: number;
  headers: http2.IncomingHttpHeaders;
  /**
   * The body, chunk by chunk. Reading slowly slows the agent (HTTP/2 flow control). It throws when the
   * answer is cut off (the agent's channel closed, or the agent reset the stream) rather than ending
   * as if the answer were whole.
   */
  body: AsyncIterable<Buffer>;
  /** Stop the answer: cancels the HTTP/2 stream, which stops the generation on the machine. */
  cancel(): void;
  /** Settles when the stream has closed, however the answer ended. */
  closed: Promise<void>;
  /**
   * The HTTP trailers the machine sent after the body (its energy reading, protocol/energy.ts): read
   * once the body has ended; undefined when none came.
   */
  trailers?(): Record<string, string | string[] | undefined> | undefined;
}

export type AttemptResult =
  | { started: true; response: AgentResponse }
  /** The agent never answered (or answered retryOn): nothing was read, so another machine may take it. */
  | { started: false; error: Error };

/** One request to one agent over its channel (or to a fork machine's HTTP server). */
export function requestAgent(
  machineId: string,
  link: AgentLink,
  init: AgentRequestInit,
): Promise<AttemptResult> {
  if (link.http) return requestOverHttp(machineId, link.http.origin, init);
  return new Promise((resolve) => {
    if (init.signal?.aborted) {
      resolve({ started: false, error: abortError(init.signal) });
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = link.request!({
        method: init.method ?? "POST",
        path: init.path,
        headers: init.headers,
        ...(init.method === "GET" ? {} : { body: init.body }),
      });
    } catch (err) {
      resolve({ started: false, error: err as Error });
      return;
    }
    // Nothing to cancel once the answer has ended whole.
    const cancel = () => {
      if (!stream.closed && !stream.destroyed && !stream.readableEnded)
        stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    const onAbort = () => cancel();
    init.signal?.addEventListener("abort", onAbort, { once: true });
    stream.once("close", () => init.signal?.removeEventListener("abort", onAbort));

    let settled = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      cancel();
    }, init.headersTimeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ started: false, error: err });
    };

    // A stream whose session was torn down (the agent died), or that the agent reset (RST_STREAM with
    // an error: its engine failed mid-answer), also "ends"; only an end while the session lives and
    // without a reset is the agent's real end of the answer.
    let endedWhole = false;
    // Trailers arrive before "end": whoever read the body whole may read them.
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.once("trailers", (t) => {
      trailers = t;
    });
    stream.once("end", () => {
      endedWhole =
        stream.session !== undefined &&
        !stream.session.destroyed &&
        (stream.rstCode === undefined || stream.rstCode === http2.constants.NGHTTP2_NO_ERROR);
    });

    stream.once("response", (headers) => {
      clearTimeout(timer);
      const status = Number(headers[":status"] ?? 502);
      if (init.retryOn?.(status)) {
        cancel();
        fail(new Error(`the machine answered ${status}`));
        return;
      }
      settled = true;
      const closed = new Promise<void>((r) => (stream.closed ? r() : stream.once("close", () => r())));
      resolve({
        started: true,
        response: {
          machineId,
          status,
          headers,
          body: readBody(stream, () => endedWhole, cancel),
          cancel,
          closed,
          trailers: () => trailers,
        },
      });
    });
    // Kept for the stream's life: an error after the answer started is seen by whoever reads the body.
    stream.on("error", (err) => fail(err));
    // Every request's stream closes; an error (its stack taken) is made only for one never answered.
    stream.once("close", () => {
      if (settled) return;
      fail(
        init.signal?.aborted
          ? abortError(init.signal)
          : timedOut
            ? new Error(`no answer within ${Math.round(init.headersTimeoutMs / 1000)} s`)
            : new Error("the agent closed the request without answering"),
      );
    });
  });
}

/**
 * The stream's chunks through an iterator of its own, not an async generator on top of the stream's
 * (one promise per chunk, not three): the stream is cancelled (RST_STREAM CANCEL) when the reader
 * stops early or the body fails, and the end throws when the answer was cut off.
 */
function readBody(
  stream: http2.ClientHttp2Stream,
  endedWhole: () => boolean,
  cancel: () => void,
): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Buffer> {
      // Not destroyed on an early return: cancel() resets it instead.
      const chunks = stream.iterator({ destroyOnReturn: false });
      return {
        next: () =>
          chunks.next().then(
            (r): IteratorResult<Buffer> => {
              if (!r.done) return r as IteratorResult<Buffer>;
              cancel();
              if (!endedWhole()) throw new Error("the machine serving this request went away mid-answer");
              return { done: true, value: undefined };
            },
            (err: unknown) => {
              cancel();
              throw err;
            },
          ),
        return: async (): Promise<IteratorResult<Buffer>> => {
          cancel();
          await chunks.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}

export type ModelRequestResult =
  | { kind: "answered"; response: AgentResponse }
  /** No machine serves the model now. */
  | { kind: "not_served" }
  /** Every machine tried failed before answering. */
  | { kind: "failed"; error: Error };

/**
 * Send a request for `model` to a machine serving it; one that fails before answering (its channel is
 * gone, or it answers 502/503 because its engine is down or full) is replaced by another, up to three
 * machines. A machine that answers it no longer serves the model (stopped there since its last
 * heartbeat) is struck from the model's machines and another is tried; with none left, `place` may
 * load a replica once (a deployment's cold start) before the request is sent again. The router
 * counts the request against its machine until the answer's stream closes.
 */
export async function requestModel(
  router: Router,
  model: string,
  init: Omit<AgentRequestInit, "retryOn">,
  opts: {
    maxAttempts?: number;
    /** Which machines serving the model may take the request (a deployment's own replicas). */
    allow?: MachineFilter | undefined;
    /** Called as each machine is tried (after the router counts the request against it). */
    onAttempt?: (machineId: string) => void;
    onRetry?: (machineId: string, error: Error) => void;
    /** Load a replica when every machine thought to serve the model turned out not to (a deployment's). */
    place?: (() => Promise<void>) | undefined;
  } = {},
): Promise<ModelRequestResult> {
  const maxAttempts = opts.maxAttempts ?? MAX_ATTEMPTS;
  let tried = new Set<string>();
  let lastError: Error | undefined;
  let notServed = 0;
  let placed = false;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    if (init.signal?.aborted) return { kind: "failed", error: abortError(init.signal) };
    let machine = router.pick(model, tried, opts.allow);
    if (!machine && opts.place && !placed && tried.size > 0 && notServed === tried.size) {
      // Every machine tried had lost the model: load a replica (it may land on one of them again).
      placed = true;
      try {
        await opts.place();
      } catch (err) {
        return { kind: "failed", error: err as Error };
      }
      tried = new Set();
      notServed = 0;
      machine = router.pick(model, tried, opts.allow);
    }
    if (!machine) break;
    tried.add(machine.id);
    router.begin(machine.id, model);
    opts.onAttempt?.(machine.id);
    const res = await requestAgent(machine.id, machine.link, {
      ...init,
      // Nothing was generated on a 502/503, so another machine may take the request, unless this is
      // the last try: then the client gets the machine's own answer.
      retryOn: attempt < maxAttempts - 1 ? (status) => status === 502 || status === 503 : undefined,
    });
    if (res.started) {
      // The stream closes however the answer ends (whole, cut off, or cancelled): count it until then.
      void res.response.closed.then(() => router.end(machine.id, model));
      if (res.response.status !== 404) return { kind: "answered", response: res.response };
      const head = await readHead(res.response, NOT_SERVED_MAX_BYTES);
      if (!saysNotServed(head.bytes)) return { kind: "answered", response: replay(res.response, head) };
      res.response.cancel();
      // Its heartbeat was stale (stopped by hand, or lost by its engine): route as it is now.
      router.notServing(machine.id, model);
      notServed++;
      lastError = new Error(`${machine.id} no longer serves ${model}`);
      opts.onRetry?.(machine.id, lastError);
      attempt--; // a machine that served nothing costs no attempt: at most one per machine known
      continue;
    }
    router.end(machine.id, model);
    lastError = res.error;
    if (init.signal?.aborted) break;
    opts.onRetry?.(machine.id, res.error);
  }
  if (tried.size === 0) return { kind: "not_served" };
  return { kind: "failed", error: lastError ?? new Error("unknown error") };
}

interface Head {
  bytes: Buffer;
  /** The body after `bytes`, not read yet (or its error, once the body was cut off). */
  rest: AsyncIterator<Buffer>;
  error?: unknown;
}

/** The first `max` bytes (or so) of an answer's body, the rest left to read. */
async function readHead(res: AgentResponse, max: number): Promise<Head> {
  const rest = res.body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    while (size < max) {
      const next = await rest.next();
      if (next.done) break;
      chunks.push(next.value);
      size += next.value.length;
    }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), rest, error };
  }
  return { bytes: Buffer.concat(chunks), rest };
}

/** The agent's 404 for a model it does not serve (control-api/openai-routes.ts), or its engine's. */
function saysNotServed(body: Buffer): boolean {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { error?: { code?: unknown } } | null;
    return parsed?.error?.code === "model_not_found";
  } catch {
    return false;
  }
}

/** The answer again, whole: the bytes already read, then the rest as it comes. */
function replay(res: AgentResponse, head: Head): AgentResponse {
  return {
    ...res,
    body: (async function* () {
      try {
        if (head.bytes.length > 0) yield head.bytes;
        if (head.error !== undefined) throw head.error;
        for (let next = await head.rest.next(); !next.done; next = await head.rest.next()) yield next.value;
      } finally {
        await head.rest.return?.();
      }
    })(),
  };
}

export function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("the request was cancelled");
}
