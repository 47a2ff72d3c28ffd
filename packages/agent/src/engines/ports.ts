import { createServer } from "node:net";

/** Engines listen on loopback only (docs/architecture.md §6); this is the one address they are given. */
export const LOOPBACK = "127.0.0.1";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it, we close it and hand it
 * to the engine. Another process could take it in between; the engine then fails to bind and its
 * start fails with that in its stderr, which the caller may retry.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port was assigned"))));
    });
  });
}
