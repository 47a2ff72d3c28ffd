import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local HTTP server from which agents download a model file (hubs are unreachable in tests): `GET
 * /NAME.gguf` answers the file, anything else 404. `hold()` makes the next downloads wait until the
 * returned release is called, so a test can look at the gateway while a pull or cold start is under way.
 */
export interface ModelServer {
  url(name?: string): string;
  /** Paths requested so far. */
  readonly requests: string[];
  hold(): () => void;
  close(): Promise<void>;
}

export async function startModelServer(file: string): Promise<ModelServer> {
  const requests: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const size = statSync(file).size;
  const server = createServer((req, res) => {
    requests.push(req.url ?? "/");
    if (!req.url?.endsWith(".gguf")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("no such file");
      return;
    }
    void gate.then(() => {
      res.writeHead(200, { "content-length": size, "content-type": "application/octet-stream" });
      createReadStream(file).pipe(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name = "model.gguf") => `http://127.0.0.1:${port}/${name}`,
    requests,
    hold() {
      let release!: () => void;
      gate = new Promise((r) => {
        release = r;
      });
      return () => {
        release();
        gate = Promise.resolve();
      };
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
