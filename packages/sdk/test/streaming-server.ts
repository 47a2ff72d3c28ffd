import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
  /** Resolves when the client closed the connection before the answer ended (abort, break). */
  clientLeft: Promise<void>;
  /** True once `clientLeft` resolved. */
  left: boolean;
}

export type Handler = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

export interface StreamingServer {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on a free loopback port whose handler writes the answer itself, piece by piece,
 * and learns when the client goes away: a stand-in for the gateway in the SDK's unit tests.
 */
export async function startStreamingServer(handler: Handler): Promise<StreamingServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let markLeft = () => {};
      const seen: SeenRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        clientLeft: new Promise<void>((resolve) => {
          markLeft = resolve;
        }),
        left: false,
      };
      res.on("close", () => {
        if (!res.writableFinished) {
          seen.left = true;
          markLeft();
        }
      });
      requests.push(seen);
      void handler(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Starts an event stream answer. */
export function sseHead(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
}

export function sse(res: ServerResponse, data: unknown): void {
  res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}

/** An OpenAI chat chunk adding `content`. */
export function chatChunk(content: string, finish: string | null = null, model = "m"): unknown {
  return {
    id: "c1",
    object: "chat.completion.chunk",
    created: 0,
    model,
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  };
}
