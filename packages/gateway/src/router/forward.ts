import http2 from "node:http2";
import { passOnHeaders } from "@beta9/http";
import type { FastifyReply } from "fastify";
import type { AgentLink } from "../machines/registry.ts";

export type ForwardResult =
  | { started: true; status: number }
  /** The agent never answered: nothing reached the client, so another machine may take the request. */
  | { started: false; error: Error };

/**
 * Send one request to an agent over its channel and stream the answer to the client chunk by chunk:
 * nothing is buffered, a slow client pauses the agent's stream (HTTP/2 flow control carries that to
 * the engine), and a client that leaves cancels the stream, which stops the generation.
 */
export function forwardToAgent(
  reply: FastifyReply,
  link: AgentLink,
  init: {
    path: string;
    body: string;
    headers: Record<string, string>;
    headersTimeoutMs: number;
    /** Answers that mean "this machine cannot serve it now" (its engine is down): try another. */
    retryOn?: (status: number) => boolean;
    /** Called once, with the first chunk of the answer's body (time to first token). */
    onFirstChunk?: () => void;
  },
): Promise<ForwardResult> {
  const res = reply.raw;
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = link.request!({ method: "POST", path: init.path, headers: init.headers, body: init.body });
    } catch (err) {
      resolve({ started: false, error: err as Error });
      return;
    }
    let started = false;
    let isSse = false;
    const timer = setTimeout(() => {
      if (!started) stream.close(http2.constants.NGHTTP2_CANCEL);
    }, init.headersTimeoutMs);
    const onClientGone = () => {
      if (!res.writableFinished) stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    res.on("close", onClientGone);

    stream.on("response", (headers) => {
      clearTimeout(timer);
      const status = Number(headers[":status"] ?? 502);
      if (init.retryOn?.(status)) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish(new Error(`the machine answered ${status}`));
        return;
      }
      started = true;
      const pass = passOnHeaders(headers as Record<string, string | string[] | undefined>);
      isSse = pass.sse;
      reply.hijack();
      res.writeHead(status, pass.headers);
      res.flushHeaders?.();
      resolve({ started: true, status });
    });
    let first = true;
    stream.on("data", (chunk: Buffer) => {
      if (!started) return;
      if (first) {
        first = false;
        init.onFirstChunk?.();
      }
      if (!res.write(chunk)) {
        stream.pause();
        res.once("drain", () => stream.resume());
      }
    });
    stream.on("end", () => {
      if (!started) return;
      // A stream whose session was torn down (the agent died) also "ends"; only a live session's end
      // is the agent's real end of the answer.
      if (!stream.session || stream.session.destroyed)
        finish(new Error("the agent's channel closed mid-answer"));
      else res.end();
    });
    stream.on("error", (err) => finish(err));
    stream.on("close", () => finish(undefined));

    let finished = false;
    function finish(err: Error | undefined) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      res.off("close", onClientGone);
      if (!started) {
        resolve({
          started: false,
          error: err ?? new Error("the agent closed the request without answering"),
        });
        return;
      }
      if (res.writableEnded) return;
      // The agent went away mid-answer: end the stream with an error the client can see, never hang.
      if (isSse) {
        res.end(
          `data: ${JSON.stringify({ error: { message: "the machine serving this request went away; retry it", type: "server_error", code: "worker_lost" } })}\n\n`,
        );
      } else {
        res.destroy(err);
      }
    }
  });
}
