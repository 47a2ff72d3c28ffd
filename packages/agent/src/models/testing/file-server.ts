import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/*
 * A real HTTP server for download tests: it serves one file from disk (never from memory), honours
 * Range and If-Range like Hugging Face's CDN, and can misbehave on purpose — cut the connection
 * midway, stall, or ignore Range — the way real networks and servers do.
 */

export interface FileServerOptions {
  file: string;
  etag?: string;
  /** Answer every request with the whole file and 200, as servers without range support do. */
  ignoreRange?: boolean;
  /** Close the connection after this many body bytes, on the first `cutTimes` requests. */
  cutAfterBytes?: number;
  cutTimes?: number;
  /** Send this many body bytes, then go silent (connection open) on the first request. */
  stallAfterBytes?: number;
  /** Answer this status (no body) instead of the file. */
  status?: number;
}

export interface SeenRequest {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
}

export interface FileServer {
  url(path?: string): string;
  readonly requests: SeenRequest[];
  options: FileServerOptions;
  close(): Promise<void>;
}

export async function startFileServer(options: FileServerOptions): Promise<FileServer> {
  const requests: SeenRequest[] = [];
  let cuts = 0;
  let stalled = false;
  const state = { options };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const opts = state.options;
    const size = statSync(opts.file).size;
    const etag = opts.etag ?? '"v1"';
    const seen: SeenRequest = {
      path: req.url ?? "/",
      range: req.headers.range,
      ifRange: req.headers["if-range"] as string | undefined,
      status: 0,
    };
    requests.push(seen);
    const reply = (status: number, headers: Record<string, string | number>) => {
      seen.status = status;
      res.writeHead(status, { etag, "accept-ranges": opts.ignoreRange ? "none" : "bytes", ...headers });
    };
    if (opts.status) {
      reply(opts.status, { "content-length": 0 });
      res.end();
      return;
    }

    let start = 0;
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const validatorOk = seen.ifRange === undefined || seen.ifRange === etag;
    if (match && !opts.ignoreRange && validatorOk) {
      start = Number(match[1]);
      if (start >= size) {
        reply(416, { "content-range": `bytes */${size}`, "content-length": 0 });
        res.end();
        return;
      }
      reply(206, { "content-range": `bytes ${start}-${size - 1}/${size}`, "content-length": size - start });
    } else {
      reply(200, { "content-length": size });
    }

    let limit: number | undefined;
    let after: "cut" | "stall" | undefined;
    if (opts.cutAfterBytes !== undefined && cuts < (opts.cutTimes ?? 1)) {
      cuts++;
      limit = opts.cutAfterBytes;
      after = "cut";
    } else if (opts.stallAfterBytes !== undefined && !stalled) {
      stalled = true;
      limit = opts.stallAfterBytes;
      after = "stall";
    }
    const end = limit === undefined ? size - 1 : Math.min(size - 1, start + limit - 1);
    const stream = createReadStream(opts.file, { start, end });
    if (after === undefined) {
      stream.pipe(res);
      return;
    }
    stream.pipe(res, { end: false });
    stream.on("end", () => {
      // "cut": flush what was sent, then hang up mid-body; "stall": just stop talking.
      if (after === "cut") res.socket?.end();
    });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path = "/model.gguf") => `http://127.0.0.1:${port}${path}`,
    requests,
    get options() {
      return state.options;
    },
    set options(next: FileServerOptions) {
      state.options = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
