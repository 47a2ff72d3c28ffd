import type { ServerResponse } from "node:http";
import type { FastifyReply } from "fastify";

/** Aborted when the client goes away before its answer is complete; dispose() stops watching. */
export interface ClientGone {
  signal: AbortSignal;
  dispose(): void;
}

export function clientGone(reply: FastifyReply): ClientGone {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableEnded) controller.abort(new Error("the client went away"));
  };
  res.once("close", onClose);
  return { signal: controller.signal, dispose: () => res.off("close", onClose) };
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
