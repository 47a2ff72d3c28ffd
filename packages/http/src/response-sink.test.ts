import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, expect, it } from "vitest";
import { http2StreamSink } from "./response-sink.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A real HTTP/2 server and session: the next request's server stream. */
async function serverStream(): Promise<{ stream: http2.ServerHttp2Stream; req: http2.ClientHttp2Stream }> {
  const server = http2.createServer();
  const got = new Promise<http2.ServerHttp2Stream>((r) => server.once("stream", (s) => r(s)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  session.on("error", () => {});
  cleanups.push(() => {
    session.destroy();
    server.close();
  });
  const req = session.request({ ":method": "POST", ":path": "/v1/chat/completions" });
  req.on("error", () => {});
  req.end("{}");
  const stream = await got;
  stream.on("error", () => {});
  return { stream, req };
}

it("a stream the peer reset is not an answer given, and answering it throws nothing", async () => {
  const { stream, req } = await serverStream();
  const sink = http2StreamSink(stream, { "x-request-id": "r1" });
  const closed = new Promise<void>((r) => sink.on("close", r));
  req.close(http2.constants.NGHTTP2_CANCEL);
  await closed;
  // Node ends a reset stream's writable side itself: that must not read as our own end.
  expect(stream.writableEnded).toBe(true);
  expect(sink.ended).toBe(false);
  // What a proxy does when the engine's headers arrive just after the reset.
  expect(() => {
    sink.head(200, { "content-type": "text/event-stream" }, { trailers: true, flush: true });
    sink.write(Buffer.from("data: x\n\n"));
    sink.end(undefined, { "x-beta9-agent-energy": "{}" });
  }).not.toThrow();
  expect(sink.ended).toBe(true);
});

it("sends status, fixed headers, the body and trailers", async () => {
  const { stream, req } = await serverStream();
  const sink = http2StreamSink(stream, { "x-request-id": "r2" });
  const answer = new Promise<{ head: http2.IncomingHttpHeaders; body: string; trailers: unknown }>(
    (resolve) => {
      let head: http2.IncomingHttpHeaders = {};
      let trailers: unknown;
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        head = h;
      });
      req.on("trailers", (t) => {
        trailers = t;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ head, body: Buffer.concat(chunks).toString(), trailers }));
    },
  );
  sink.head(201, { "content-type": "application/json" }, { trailers: true });
  expect(sink.headersSent).toBe(true);
  expect(sink.write(Buffer.from('{"a":'))).toBe(true);
  sink.end("1}", { "x-energy": "2 J" });
  const a = await answer;
  expect(a.head[":status"]).toBe(201);
  expect(a.head["x-request-id"]).toBe("r2");
  expect(a.body).toBe('{"a":1}');
  expect(a.trailers).toMatchObject({ "x-energy": "2 J" });
});
