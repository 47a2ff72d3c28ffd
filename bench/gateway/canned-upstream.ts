/*
 * A canned OpenAI-compatible upstream for bench/gateway/run.ts. It takes llama-server's command line
 * (--host, --port, --alias, -m; other flags are ignored) so the agent's llama.cpp engine can start it
 * through a `llama-server` wrapper, and answers:
 *   GET /health                 200 {"status":"ok"}
 *   GET /v1/models              the alias as the one model
 *   POST /v1/chat/completions   a fixed JSON body, or with "stream": true a fixed SSE stream of
 *                               --chunks chunks, --gap-ms apart, then `data: [DONE]`
 * `--version` prints a llama-server-style version line to stderr and exits.
 */
import { createServer } from "node:http";

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stderr.write("version: 0.0.0-canned (bench/gateway)\n");
  process.exit(0);
}
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const host = flag("--host", "127.0.0.1");
const port = Number(flag("--port", "0"));
const alias = flag("--alias", "canned");
const chunks = Number(flag("--chunks", "32"));
const gapMs = Number(flag("--gap-ms", "5"));

const created = 1_700_000_000;
const models = JSON.stringify({
  object: "list",
  data: [{ id: alias, object: "model", created, owned_by: "llamacpp" }],
});
const whole = JSON.stringify({
  id: "chatcmpl-canned",
  object: "chat.completion",
  created,
  model: alias,
  choices: [{ index: 0, message: { role: "assistant", content: "A canned answer." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 8, completion_tokens: chunks, total_tokens: 8 + chunks },
});
const chunk = (i: number) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-canned",
    object: "chat.completion.chunk",
    created,
    model: alias,
    choices: [
      {
        index: 0,
        delta: i === 0 ? { role: "assistant", content: "w0" } : { content: ` w${i}` },
        finish_reason: i === chunks - 1 ? "stop" : null,
      },
    ],
    ...(i === chunks - 1
      ? { usage: { prompt_tokens: 8, completion_tokens: chunks, total_tokens: 8 + chunks } }
      : {}),
  })}\n\n`;
const events = Array.from({ length: chunks }, (_, i) => chunk(i));

const server = createServer((req, res) => {
  const body: Buffer[] = [];
  req.on("data", (b: Buffer) => body.push(b));
  req.on("end", () => {
    const json = (status: number, text: string) =>
      res
        .writeHead(status, {
          "content-type": "application/json; charset=utf-8",
          "content-length": text.length,
        })
        .end(text);
    if (req.url === "/health") return json(200, '{"status":"ok"}');
    if (req.url === "/v1/models") return json(200, models);
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") return json(404, "{}");
    let stream = false;
    try {
      stream = (JSON.parse(Buffer.concat(body).toString("utf8")) as { stream?: boolean }).stream === true;
    } catch {
      return json(400, '{"error":{"message":"bad json"}}');
    }
    if (!stream) return json(200, whole);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.flushHeaders();
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      res.write(events[i]!);
      i++;
      if (i < chunks) setTimeout(next, gapMs);
      else res.end("data: [DONE]\n\n");
    };
    next();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, host, () => {
  const a = server.address();
  process.stdout.write(`listening ${typeof a === "object" && a ? a.port : port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
