import type { FastifyReply } from "fastify";
import { drained } from "./client-gone.ts";

/**
 * Send `lines` as NDJSON, each as it comes, with backpressure. The status is chosen with the first
 * line: an error before it is thrown (the route answers it as usual, with its status); an error after
 * it ends the stream with `errorLine(err)`, since the 200 is sent already. With `headersFirst`, the
 * 200 goes at once (a stream whose first line may be long in coming, e.g. a queued job's logs).
 */
export async function sendNdjson(
  reply: FastifyReply,
  lines: AsyncIterable<object>,
  errorLine: (err: unknown) => object,
  opts: { headersFirst?: boolean } = {},
): Promise<void> {
  const it = lines[Symbol.asyncIterator]();
  let next: IteratorResult<object> | undefined;
  if (!opts.headersFirst) {
    try {
      next = await it.next();
    } catch (err) {
      await it.return?.(undefined);
      throw err;
    }
  }
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    "content-type": "application/x-ndjson",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  });
  if (opts.headersFirst) res.flushHeaders();
  try {
    next ??= await it.next();
    while (!next.done) {
      if (res.destroyed) return;
      if (!res.write(`${JSON.stringify(next.value)}\n`)) await drained(res);
      if (res.destroyed) return;
      next = await it.next();
    }
    res.end();
  } catch (err) {
    if (!res.destroyed && !res.writableEnded) res.end(`${JSON.stringify(errorLine(err))}\n`);
  } finally {
    // Stops the producer (and whatever it reads from a machine) if the loop left early.
    await it.return?.(undefined);
  }
}
