/**
 * Diagnostic for the heartbeat bench: what one agent channel costs the gateway in memory, apart from
 * everything else the gateway holds. This process plays the gateway's side of K channels exactly as
 * packages/gateway/src/channel/agent-channel.ts does (http2.connect over the accepted socket, one
 * POST heartbeat stream held open, a ping timer); a child process plays the agents (one HTTP/2
 * server, the socket handed over with emit("connection")). Measured after a forced GC, per channel,
 * against the same K plain TCP sockets, and the channel's idle form (agent protocol 2: the socket
 * with a line reader on it, no HTTP/2 session).
 *
 *   npx node --expose-gc bench/heartbeats/channel-memory.ts [--channels 5000]
 */
import { type ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { parseArgs } from "node:util";
import { ChannelLineReader } from "@beta9/http";

const HB_PATH = "/agent/v1/heartbeats";

interface Mem {
  rss: number;
  anon: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function mem(): Mem {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  const anon = /RssAnon:\s+(\d+)/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return {
    rss: m.rss,
    anon: anon ? Number(anon[1]) * 1024 : Number.NaN,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
  };
}

/** The agents' side: K sockets, each served by one shared HTTP/2 server that answers the stream. */
async function agents(port: number, k: number): Promise<void> {
  const h2 = http2.createServer({});
  h2.on("sessionError", () => {});
  h2.on("stream", (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
    stream.on("error", () => {});
  });
  for (let i = 0; i < k; i++) {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((r) => socket.once("connect", () => r()));
    if (process.env.CHANNEL_MEMORY_MODE === "h2") h2.emit("connection", socket);
  }
  process.send?.("ready");
  await new Promise(() => {});
}

type Mode = "tcp" | "idle" | "h2";

async function measure(mode: Mode, k: number): Promise<Mem & { k: number }> {
  const held: unknown[] = [];
  let opened = 0;
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    if (mode === "tcp") {
      held.push(socket);
      opened++;
      return;
    }
    if (mode === "idle") {
      // As AgentChannel's idle form: no delay for acks, a line reader fed by the socket's data.
      socket.setNoDelay(true);
      const lines = new ChannelLineReader(64 * 1024);
      socket.on("data", (chunk: Buffer) => {
        lines.push(chunk, () => true);
      });
      held.push(socket, lines);
      opened++;
      return;
    }
    // As AgentChannel: client session over the socket with its settings (no HPACK dynamic table),
    // heartbeat stream open (read as buffers), ping timer.
    const session = http2.connect("http://agent.invalid", {
      createConnection: () => socket,
      settings: { initialWindowSize: 256 * 1024, headerTableSize: 0 },
      maxDeflateDynamicTableSize: 0,
    });
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": HB_PATH }, { endStream: false });
    stream.on("response", () => opened++);
    stream.on("data", () => {});
    stream.on("error", () => {});
    const pinger = setInterval(() => session.ping(() => {}), 15_000);
    pinger.unref();
    held.push(session, stream, pinger);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const before = mem();
  const child: ChildProcess = fork(
    import.meta.filename,
    ["--agents", String(port), "--channels", String(k)],
    {
      env: { ...process.env, CHANNEL_MEMORY_MODE: mode },
      stdio: "inherit",
    },
  );
  await new Promise<void>((r) => child.once("message", () => r()));
  while (opened < k) await sleep(50);
  await sleep(500);
  const after = mem();
  child.kill("SIGKILL");
  server.close();
  const per = (a: number, b: number) => (a - b) / k;
  return {
    k,
    rss: per(after.rss, before.rss),
    anon: per(after.anon, before.anon),
    heapUsed: per(after.heapUsed, before.heapUsed),
    heapTotal: per(after.heapTotal, before.heapTotal),
    external: per(after.external, before.external),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      channels: { type: "string", default: "5000" },
      agents: { type: "string" },
      mode: { type: "string", default: "" },
    },
  });
  const k = Number(values.channels);
  if (values.agents) return agents(Number(values.agents), k);
  if (!(globalThis as { gc?: unknown }).gc)
    process.stderr.write("(run with --expose-gc for steadier figures)\n");
  // Each mode in a fresh process so one does not leave freed memory behind for the other.
  if (values.mode === "tcp" || values.mode === "idle" || values.mode === "h2") {
    const r = await measure(values.mode, k);
    process.send?.(r);
    return;
  }
  const kb = (x: number) => `${(x / 1024).toFixed(1)} KB`.padStart(9);
  process.stdout.write(`per connection, ${k} connections held (after GC):\n`);
  process.stdout.write(
    "  mode                                   RSS  anon RSS   JS heap used  heap total  external\n",
  );
  const rows: Record<string, Mem> = {};
  for (const mode of ["tcp", "idle", "h2"] as const) {
    const child = fork(import.meta.filename, ["--mode", mode, "--channels", String(k)], {
      execArgv: process.execArgv,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const r = await new Promise<Mem>((res) => child.once("message", (m) => res(m as Mem)));
    child.kill();
    rows[mode] = r;
    const label = {
      tcp: "plain TCP socket",
      idle: "idle channel (lines, protocol 2)",
      h2: "agent channel (HTTP/2 session + stream)",
    }[mode];
    process.stdout.write(
      `  ${label.padEnd(38)} ${kb(r.rss)} ${kb(r.anon)} ${kb(r.heapUsed).padStart(14)} ${kb(r.heapTotal).padStart(11)} ${kb(r.external)}\n`,
    );
  }
  const d = (f: keyof Mem) => rows.h2![f] - rows.tcp![f];
  process.stdout.write(
    `  ${"HTTP/2 on top of TCP".padEnd(38)} ${kb(d("rss"))} ${kb(d("anon"))} ${kb(d("heapUsed")).padStart(14)} ${kb(d("heapTotal")).padStart(11)} ${kb(d("external"))}\n`,
  );
  const i = (f: keyof Mem) => rows.idle![f] - rows.tcp![f];
  process.stdout.write(
    `  ${"idle form on top of TCP".padEnd(38)} ${kb(i("rss"))} ${kb(i("anon"))} ${kb(i("heapUsed")).padStart(14)} ${kb(i("heapTotal")).padStart(11)} ${kb(i("external"))}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`channel-memory: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
