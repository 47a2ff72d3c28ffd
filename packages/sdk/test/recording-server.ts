import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

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
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      const answer = reply(recorded);
      if (answer === "hang") return; // never answers: for timeouts
      const body = answer.raw ?? (answer.json === undefined ? "" : JSON.stringify(answer.json));
      const type = answer.raw === undefined ? "application/json" : "text/html";
      res.writeHead(answer.status, { "content-type": type, ...answer.headers });
      res.end(answer.status === 204 ? undefined : body);
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

/** A loopback port on which nothing listens: bound once, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
