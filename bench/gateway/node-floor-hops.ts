/**
 * The two bare Node hops of bench/gateway/node-floor.ts, each run as a process of its own; nothing
 * here but Node's HTTP modules and undici (the agent's client), so each hop's CPU is the runtime's alone.
 *
 *   node bench/gateway/node-floor-hops.ts front PORT BACK_PORT
 *   node bench/gateway/node-floor-hops.ts back PORT UPSTREAM_PORT
 */
import http from "node:http";
import http2 from "node:http2";
import { type Dispatcher, Pool } from "undici";

const HOST = "127.0.0.1";
const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE } =
  http2.constants;

function front(port: number, backPort: number): void {
  // One session, dialled again when it is gone (the back hop may start listening after this one).
  let session: http2.ClientHttp2Session | undefined;
  const toBack = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`http://${HOST}:${backPort}`);
      session.on("error", () => {});
    }
    return session;
  };
  http
    .createServer((req, res) => {
      const stream = toBack().request({
        [HTTP2_HEADER_METHOD]: req.method!,
        [HTTP2_HEADER_PATH]: req.url!,
        ...(req.headers["content-type"] ? { [HTTP2_HEADER_CONTENT_TYPE]: req.headers["content-type"] } : {}),
      });
      stream.on("response", (headers) => {
        const type = headers[HTTP2_HEADER_CONTENT_TYPE] as string | undefined;
        res.writeHead(Number(headers[HTTP2_HEADER_STATUS]), type ? { "content-type": type } : {});
        stream.pipe(res);
      });
      stream.on("error", () => res.destroy());
      res.on("close", () => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      req.pipe(stream);
    })
    .listen(port, HOST);
}

function back(port: number, upstreamPort: number): void {
  // undici's Pool, the client the agent uses for its engine; each request's small body is read whole
  // first, as the agent reads it.
  const pool = new Pool(`http://${HOST}:${upstreamPort}`, { connections: 256 });
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const type = headers[HTTP2_HEADER_CONTENT_TYPE] as string | undefined;
      pool
        .request({
          method: headers[HTTP2_HEADER_METHOD] as Dispatcher.HttpMethod,
          path: headers[HTTP2_HEADER_PATH] as string,
          headers: type ? { "content-type": type } : {},
          body: chunks.length ? Buffer.concat(chunks) : null,
        })
        .then(
          (res) => {
            const answerType = res.headers["content-type"];
            stream.respond({
              [HTTP2_HEADER_STATUS]: res.statusCode,
              ...(answerType ? { [HTTP2_HEADER_CONTENT_TYPE]: String(answerType) } : {}),
            });
            res.body.pipe(stream);
            stream.on("close", () => res.body.destroy());
          },
          () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
        );
    });
  });
  server.listen(port, HOST);
}

const [role, port, other] = process.argv.slice(2);
if (role === "front") front(Number(port), Number(other));
else if (role === "back") back(Number(port), Number(other));
else {
  process.stderr.write("usage: node bench/gateway/node-floor-hops.ts front|back PORT OTHER_PORT\n");
  process.exit(2);
}
