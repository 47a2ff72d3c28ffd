/**
 * What the agent's /v1 proxy costs per streamed chunk and per request, against other ways of writing
 * it. A fake engine in this process answers a streamed chat completion (SSE events the size of the
 * builtin engine's, a few ms apart, so each arrives on its own) or, with --json, one JSON answer with
 * a content-length. Four proxy processes (Fastify, as the agent's control API) forward it: the real
 * proxyRequest of @beta9/http; the same with stream.pipeline instead of `for await`; undici's
 * stream() (the body goes from the parser straight to the response); and "lean", proxyRequest that
 * keeps content-length and flushes headers early only for event streams. Requests go to each in
 * turn; each proxy process's CPU comes from /proc/<pid>/task/<tid>/schedstat. See README.md.
 *
 *   npx node bench/engine/proxy-cost.ts [--requests 40] [--events 64] [--gap-ms 3] [--json]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { proxyRequest, responseSink, serverOptions } from "@beta9/http";
import Fastify, { type FastifyReply } from "fastify";
import { pino } from "pino";
import { request, stream } from "undici";

const HOST = "127.0.0.1";
const VARIANTS = ["proxyRequest", "pipeline", "undici-stream", "lean"] as const;
type Variant = (typeof VARIANTS)[number];

// ---------------------------------------------------------------------------------------------
// Proxy process (this file with --serve VARIANT --upstream URL)

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

function responseHeaders(
  raw: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  return headers;
}

/** proxyRequest's shape with stream.pipeline in place of `for await` + write + drain. */
async function proxyPipeline(reply: FastifyReply, url: string, body: string): Promise<void> {
  const abort = new AbortController();
  const res = reply.raw;
  res.on("close", () => {
    if (!res.writableFinished) abort.abort(new Error("client went away"));
  });
  reply.hijack();
  const upstream = await request(url, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
    signal: abort.signal,
  });
  res.writeHead(upstream.statusCode, responseHeaders(upstream.headers));
  res.flushHeaders();
  await pipeline(upstream.body, res).catch(() => res.destroy());
}

/**
 * proxyRequest with two changes for answers that are not event streams: content-length is kept
 * (it is end-to-end, undici does not decode bodies), and headers are not flushed on their own, so
 * a JSON answer leaves in one write (no separate header packet, no chunked terminator).
 */
async function proxyLean(reply: FastifyReply, url: string, body: string): Promise<void> {
  const abort = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new Error("client went away"));
  };
  res.on("close", onClose);
  reply.hijack();
  try {
    const upstream = await request(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
      signal: abort.signal,
    });
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(upstream.headers))
      if (v !== undefined && (k === "content-length" || !HOP_BY_HOP.has(k))) headers[k] = v;
    const isSse = String(upstream.headers["content-type"] ?? "").startsWith("text/event-stream");
    res.writeHead(upstream.statusCode, headers);
    if (isSse) res.flushHeaders();
    for await (const chunk of upstream.body) {
      if (abort.signal.aborted) break;
      if (!res.write(chunk)) await Promise.race([once(res, "drain"), once(res, "close")]);
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    res.off("close", onClose);
  }
}

/** undici's stream(): the parser's chunks are written to the response, no Readable in between. */
async function proxyUndiciStream(reply: FastifyReply, url: string, body: string): Promise<void> {
  const abort = new AbortController();
  const res = reply.raw;
  res.on("close", () => {
    if (!res.writableFinished) abort.abort(new Error("client went away"));
  });
  reply.hijack();
  await stream(
    url,
    { method: "POST", body, headers: { "content-type": "application/json" }, signal: abort.signal },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, responseHeaders(headers));
      res.flushHeaders();
      return res;
    },
  ).catch(() => res.destroy());
}

async function serve(variant: Variant, upstream: string): Promise<void> {
  const app = Fastify(serverOptions(pino({ level: "warn" })));
  app.post("/v1/chat/completions", async (req, reply) => {
    const body = JSON.stringify(req.body);
    if (variant === "proxyRequest") {
      reply.hijack();
      await proxyRequest(responseSink(reply.raw), {
        url: upstream,
        body,
        headers: { "content-type": "application/json" },
      });
    } else if (variant === "pipeline") await proxyPipeline(reply, upstream, body);
    else if (variant === "lean") await proxyLean(reply, upstream, body);
    else await proxyUndiciStream(reply, upstream, body);
  });
  await app.listen({ host: HOST, port: 0 });
  process.stdout.write(`${JSON.stringify({ port: (app.server.address() as AddressInfo).port })}\n`);
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Bench process

function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {}
  }
  return ns / 1e6;
}

const p50 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(s.length / 2) - 1)] ?? Number.NaN;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * An SSE answer shaped like the builtin engine's chat chunks, or (json) one chat.completion object
 * with a content-length, as the engine answers a request that does not stream.
 */
function fakeEngine(events: number, gapMs: number, json: boolean): http.Server {
  const chunk = (i: number) =>
    `data: ${JSON.stringify({
      id: "chatcmpl-0123456789abcdef0123456789abcdef",
      object: "chat.completion.chunk",
      created: 1_800_000_000,
      model: "smollm2",
      choices: [{ index: 0, delta: { content: ` word${i}` }, logprobs: null, finish_reason: null }],
    })}\n\n`;
  return http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (json) {
        const words = Array.from({ length: events }, (_, i) => `word${i}`).join(" ");
        const body = JSON.stringify({
          id: "chatcmpl-0123456789abcdef0123456789abcdef",
          object: "chat.completion",
          created: 1_800_000_000,
          model: "smollm2",
          choices: [{ index: 0, message: { role: "assistant", content: words }, finish_reason: "length" }],
          usage: { prompt_tokens: 30, completion_tokens: events, total_tokens: 30 + events },
        });
        setTimeout(() => {
          res.writeHead(200, {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          });
          res.end(body);
        }, gapMs);
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.flushHeaders();
      let i = 0;
      const next = () => {
        if (res.destroyed) return;
        if (i === events) {
          res.end("data: [DONE]\n\n");
          return;
        }
        res.write(chunk(i++));
        setTimeout(next, gapMs);
      };
      next();
    });
  });
}

interface Target {
  name: string;
  url: string;
  pid?: number;
  child?: ChildProcess;
  cpu: number[];
  ttfb: number[];
  total: number[];
}

async function startProxy(variant: Variant, upstream: string): Promise<Target> {
  const child = spawn(process.execPath, [import.meta.filename, "--serve", variant, "--upstream", upstream], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /"port":(\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`the ${variant} proxy exited (${code})`)));
    setTimeout(() => reject(new Error(`the ${variant} proxy did not start in 20 s`)), 20_000).unref();
  });
  return {
    name: variant,
    url: `http://${HOST}:${port}/v1/chat/completions`,
    pid: child.pid!,
    child,
    cpu: [],
    ttfb: [],
    total: [],
  };
}

async function oneRequest(t: Target, record: boolean): Promise<void> {
  const c0 = t.pid ? cpuMs(t.pid) : 0;
  const t0 = performance.now();
  const res = await request(t.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "smollm2", messages: [{ role: "user", content: "hi" }], stream: true }),
    signal: AbortSignal.timeout(30_000),
  });
  let first = Number.NaN;
  for await (const _ of res.body) if (Number.isNaN(first)) first = performance.now() - t0;
  const total = performance.now() - t0;
  if (!record) return;
  t.ttfb.push(first);
  t.total.push(total);
  if (t.pid) t.cpu.push(cpuMs(t.pid) - c0);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: "string", default: "40" },
      events: { type: "string", default: "64" },
      "gap-ms": { type: "string", default: "3" },
      json: { type: "boolean", default: false },
      serve: { type: "string" },
      upstream: { type: "string" },
    },
  });
  if (values.serve) return serve(values.serve as Variant, values.upstream!);
  const requests = Number(values.requests);
  const events = Number(values.events);
  const gapMs = Number(values["gap-ms"]);

  const json = values.json;
  const engine = fakeEngine(events, gapMs, json);
  await new Promise<void>((r) => engine.listen(0, HOST, r));
  const upstream = `http://${HOST}:${(engine.address() as AddressInfo).port}/v1/chat/completions`;
  const targets: Target[] = [{ name: "direct (no proxy)", url: upstream, cpu: [], ttfb: [], total: [] }];
  try {
    for (const v of VARIANTS) targets.push(await startProxy(v, upstream));
    process.stdout.write(
      (json
        ? `Proxy cost: one JSON answer (content-length) after ${gapMs} ms per request, ${requests} requests per proxy, `
        : `Proxy cost: ${events} SSE events ${gapMs} ms apart per request, ${requests} requests per proxy, `) +
        `round-robin after 5 warm-ups; node ${process.version}\n\n`,
    );
    for (let i = 0; i < 5 + requests; i++) {
      // Rotate the order each round so no proxy always goes first.
      for (let k = 0; k < targets.length; k++) await oneRequest(targets[(i + k) % targets.length]!, i >= 5);
    }
    const head = ["", "proxy CPU/req", "per event", "vs proxyRequest", "first byte p50", "total p50"];
    const base = mean(targets[1]!.cpu);
    const rows = targets.map((t) => [
      t.name,
      t.pid ? `${mean(t.cpu).toFixed(2)} ms` : "-",
      t.pid && !json ? `${((mean(t.cpu) / (events + 1)) * 1000).toFixed(0)} µs` : "-",
      t.pid ? `${(mean(t.cpu) / base).toFixed(2)}×` : "-",
      `${p50(t.ttfb).toFixed(2)} ms`,
      `${p50(t.total).toFixed(1)} ms`,
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    process.stdout.write(`${line(head)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
    for (const r of rows) process.stdout.write(`${line(r)}\n`);
  } finally {
    for (const t of targets) t.child?.kill("SIGTERM");
    engine.close();
    engine.closeAllConnections();
  }
}

await main();
