import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { SseStream } from "./sse.ts";

/** A real HTTP server and a raw socket client that reads only when told to. */
async function serve(handler: (res: http.ServerResponse) => void) {
  const server = http.createServer((_req, res) => handler(res));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const socket = net.connect((server.address() as AddressInfo).port, "127.0.0.1");
  await once(socket, "connect");
  socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  return { server, socket };
}

describe("SseStream", () => {
  it("writes events with the SSE headers and ends with [DONE]", async () => {
    const { server, socket } = await serve((res) => {
      const sse = new SseStream(res, { onStall: () => {} });
      sse.open();
      sse.send({ n: 1 });
      void sse.end();
    });
    let text = "";
    socket.on("data", (b: Buffer) => {
      text += b.toString();
    });
    await once(socket, "end");
    server.close();
    expect(text).toMatch(/content-type: text\/event-stream/i);
    expect(text).toMatch(/cache-control: no-cache, no-transform/i);
    expect(text).toMatch(/x-accel-buffering: no/i);
    expect(text).toContain('data: {"n":1}\n\n');
    expect(text).toContain("data: [DONE]\n\n");
  });

  it("holds events while the client does not read, and gives up past the limit", async () => {
    let stalled = false;
    let sse: SseStream | undefined;
    const { server, socket } = await serve((res) => {
      sse = new SseStream(res, { onStall: () => (stalled = true), maxBuffered: 64 * 1024 });
      sse.open();
    });
    socket.pause();
    while (!sse) await new Promise((r) => setImmediate(r));
    const event = "x".repeat(1024);
    let sent = 0;
    // The kernel's buffers fill first; then held events pass 64 KiB and the stream stalls.
    while (!stalled && sent < 100_000) {
      sse.send(event);
      sent++;
      if (sent % 256 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(stalled).toBe(true);
    socket.destroy();
    server.close();
  });
});
