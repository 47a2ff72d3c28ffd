import type { IncomingHttpHeaders } from "node:http2";
import { Agent, request } from "undici";
import { type AgentRequestInit, type AttemptResult, abortError } from "./request.ts";

/**
 * Connections to the HTTP servers of fork machines (their Ollama). No timeout between body chunks: a
 * long answer may pause while the model thinks; the client-stall timeout and aborts end it instead.
 */
const dispatcher = new Agent({ bodyTimeout: 0, keepAliveTimeout: 30_000 });

/**
 * One request to a machine reached over plain HTTP rather than its channel (a fork agent's Ollama, at
 * the address its keepalives report), answered in the same shape as a channel's: the same retries,
 * relays and cancellation apply. Nothing is sent but the request's own path, body and headers.
 */
export async function requestOverHttp(
  machineId: string,
  origin: string,
  init: AgentRequestInit,
): Promise<AttemptResult> {
  const abort = new AbortController();
  const onAbort = () => abort.abort(init.signal?.reason);
  if (init.signal?.aborted) return { started: false, error: abortError(init.signal) };
  init.signal?.addEventListener("abort", onAbort, { once: true });
  const done = () => init.signal?.removeEventListener("abort", onAbort);
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(new URL(init.path, origin), {
      method: "POST",
      body: init.body,
      headers: init.headers,
      signal: abort.signal,
      headersTimeout: init.headersTimeoutMs,
      dispatcher,
    });
  } catch (err) {
    done();
    return { started: false, error: init.signal?.aborted ? abortError(init.signal) : (err as Error) };
  }
  const status = res.statusCode;
  if (init.retryOn?.(status)) {
    res.body.destroy();
    done();
    return { started: false, error: new Error(`the machine answered ${status}`) };
  }
  const cancel = () => {
    if (!res.body.readableEnded) res.body.destroy();
  };
  const closed = new Promise<void>((r) => (res.body.closed ? r() : res.body.once("close", () => r())));
  void closed.then(done);
  return {
    started: true,
    response: {
      machineId,
      status,
      headers: res.headers as IncomingHttpHeaders,
      body: readBody(res.body, cancel),
      cancel,
      closed,
      // undici fills them in once the body has ended.
      trailers: () => res.trailers as Record<string, string | string[] | undefined>,
    },
  };
}

async function* readBody(body: AsyncIterable<Buffer>, cancel: () => void): AsyncGenerator<Buffer> {
  // undici's body throws when the server closes before the whole answer came (length or chunking).
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw new Error(`the machine serving this request went away mid-answer (${(err as Error).message})`);
  } finally {
    cancel();
  }
}
