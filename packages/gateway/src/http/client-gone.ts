import type { ServerResponse } from "node:http";
import type { FastifyReply } from "fastify";

/**
 * Aborted when the client goes away before its answer is complete, or stops taking it: with
 * `stallMs`, a response that cannot take more writes (write() said false, no 'drain' since) for that
 * long is destroyed, so the machine's generation stops and frees its slot instead of waiting on a
 * client that does not read. dispose() stops watching.
 */
export interface ClientGone {
  signal: AbortSignal;
  dispose(): void;
}

export function clientGone(reply: FastifyReply, stallMs?: number): ClientGone {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableEnded) controller.abort(new Error("the client went away"));
  };
  res.once("close", onClose);
  let stalledSince: number | undefined;
  const watch =
    stallMs && stallMs > 0
      ? setInterval(
          () => {
            if (!res.writableNeedDrain || res.destroyed) {
              stalledSince = undefined;
              return;
            }
            stalledSince ??= performance.now();
            if (performance.now() - stalledSince < stallMs) return;
            controller.abort(new Error("the client stopped reading its answer"));
            res.destroy();
          },
          Math.min(1_000, Math.max(50, stallMs / 4)),
        )
      : undefined;
  watch?.unref();
  return {
    signal: controller.signal,
    dispose: () => {
      res.off("close", onClose);
      if (watch) clearInterval(watch);
    },
  };
}

/** Resolves when the response can take more (or has closed: nothing more to wait for). */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** The same chunks, calling `onFirst` as the first one arrives. */
export async function* tapFirst<T>(source: AsyncIterable<T>, onFirst: () => void): AsyncGenerator<T> {
  let first = true;
  for await (const chunk of source) {
    if (first) {
      first = false;
      onFirst();
    }
    yield chunk;
  }
}
