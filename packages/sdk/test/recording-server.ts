import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { startStreamingServer } from "./streaming-server.ts";

export interface RecordedRequest {
  method: string;
  /** Path and query string, as the client sent them. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The body text; "" when there was none. */
  body: string;
}

export interface Reply {
  status: number;
  /** Sent as JSON unless `raw` is given. */
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

export interface RecordingServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** A real HTTP server on a free loopback port that records each request and answers with `reply`. */
export async function startRecordingServer(
  reply: (request: RecordedRequest) => Reply | "hang" = () => ({ status: 200, json: {} }),
): Promise<RecordingServer> {
  return startStreamingServer((recorded, res) => {
    const answer = reply(recorded);
    if (answer === "hang") return; // never answers: for timeouts
    const body = answer.raw ?? (answer.json === undefined ? "" : JSON.stringify(answer.json));
    const type = answer.raw === undefined ? "application/json" : "text/html";
    res.writeHead(answer.status, { "content-type": type, ...answer.headers });
    res.end(answer.status === 204 ? undefined : body);
  });
}

/** A loopback port on which nothing listens: bound once, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
