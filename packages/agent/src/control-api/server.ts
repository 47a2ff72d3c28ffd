import type { IncomingMessage, Server, ServerResponse } from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import {
  clientErrorHandler,
  installErrorHandling,
  installRequestId,
  type Logger,
  serverOptions,
} from "@beta9/http";
import { nodeHttp } from "@beta9/http/node-http";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
/** Takes a channel stream on itself (true), or leaves it to the routes (false). */
export type ChannelStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => boolean;
type StreamListener = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

/**
 * One fastify app answers two ways: HTTP/1.1 on the control port for local callers (curl, scripts,
 * the fork's scripts/test-inference), and HTTP/2 on each agent-channel socket for the gateway. Both
 * share one set of routes, so a route added once is reachable both ways; requests from the channel
 * are marked.
 */
export class ControlServer {
  readonly app: FastifyInstance;
  readonly #h2: http2.Http2Server;
  readonly #servers: Server[] = [];
  readonly #handler: Handler;
  readonly #fromChannel = new WeakSet<object>();
  #onChannelStream: ChannelStreamHandler | undefined;

  constructor(log: Logger) {
    let h1Handler: Handler | undefined;
    this.app = Fastify({
      ...serverOptions(log),
      serverFactory: (handler) => {
        h1Handler = handler;
        return nodeHttp.createServer(handler);
      },
    }).withTypeProvider<TypeBoxTypeProvider>();
    this.#handler = h1Handler!;
    installErrorHandling(this.app);
    installRequestId(this.app);
    this.#h2 = http2.createServer({}, (req, res) => {
      this.#fromChannel.add(req);
      this.#handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    });
    // The request listener above made HTTP/2's compatibility layer listen for streams (it builds the
    // request and response objects fastify takes). A stream goes there unless `onChannelStream`'s
    // handler takes it on itself first.
    const [compat, ...others] = this.#h2.listeners("stream") as StreamListener[];
    if (!compat || others.length > 0) throw new Error("unexpected listeners on the HTTP/2 server");
    this.#h2.removeAllListeners("stream");
    this.#h2.on("stream", (stream, headers, flags, rawHeaders) => {
      if (this.#onChannelStream?.(stream, headers)) return;
      compat.call(this.#h2, stream, headers, flags, rawHeaders);
    });
    // One channel at a time, and not ours to time out: the gateway and the heartbeats decide.
    this.#h2.on("sessionError", () => {});
  }

  fromGateway = (req: FastifyRequest): boolean => this.#fromChannel.has(req.raw);

  /** A shorter way for some of the gateway's requests (the inference ones: openai-routes.ts). */
  onChannelStream(handler: ChannelStreamHandler): void {
    this.#onChannelStream = handler;
  }

  /** Serve HTTP/2 on an upgraded agent-channel socket. */
  serveChannel(socket: Duplex): void {
    this.#h2.emit("connection", socket);
  }

  /** Listen on each address; returns the bound "host:port" strings. */
  async listen(addresses: { host: string; port: number }[]): Promise<string[]> {
    await this.app.ready();
    const bound: string[] = [];
    for (const a of addresses) {
      const server = nodeHttp.createServer(this.#handler);
      // What Node's parser refuses (431 headers too large, malformed) is answered in our error shape.
      server.on("clientError", clientErrorHandler);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(a.port, a.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      this.#servers.push(server);
      const addr = server.address() as AddressInfo;
      bound.push(`${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`);
    }
    return bound;
  }

  async close(): Promise<void> {
    for (const s of this.#servers) {
      s.close();
      s.closeAllConnections();
    }
    this.#h2.close();
    await this.app.close();
  }
}
