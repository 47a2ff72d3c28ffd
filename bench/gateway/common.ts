/**
 * What the gateway benches share: statistics and /proc readings (from bench/common), the child processes a
 * bench starts (killed and their temp dirs removed on any exit), a Beta9 gateway with one agent, and
 * a reader for streamed chat answers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import {
  type AgentProc,
  builtinEngineKey,
  type GatewayProc,
  initAgent,
  runsBuiltinEngine,
  startAgent,
  startGateway,
  tempDir,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { type Dispatcher, request } from "undici";
import YAML from "yaml";

import { children, processTree } from "../common/procfs.ts";

export const HOST = "127.0.0.1";
export * from "../common/procfs.ts";
export * from "../common/stats.ts";

// ---------------------------------------------------------------------------------------------
// Processes

const spawned = new Set<ChildProcess>();
const tempDirs: string[] = [];
const extraPids = new Set<number>();
process.on("exit", () => {
  for (const c of spawned) c.kill("SIGKILL");
  for (const pid of extraPids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Run a bench's main: exit 0 when it ends, 1 with the error when it throws (the exit hook kills what it started). */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}

/** A temp dir removed when the bench exits. */
export function benchDir(prefix: string): string {
  const d = tempDir(prefix);
  tempDirs.push(d);
  return d;
}

/** Kill this process too when the bench exits (an engine that might outlive its agent). */
export function killOnExit(pid: number): void {
  extraPids.add(pid);
}

/** Exit (and so kill every child) if the bench runs longer than `ms`, or on Ctrl-C. */
export function watchdog(ms: number): void {
  const t = setTimeout(() => {
    process.stderr.write(`watchdog: over ${Math.round(ms / 60_000)} min, stopping\n`);
    process.exit(2);
  }, ms);
  t.unref();
  // Through process.exit, so the exit handler above stops every process the bench started.
  process.on("SIGINT", () => process.exit(130));
  process.on("SIGTERM", () => process.exit(143));
}

export function spawnChild(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
  spawned.add(c);
  c.on("exit", () => spawned.delete(c));
  return c;
}

export async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGTERM");
  const t = setTimeout(() => c.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(t);
}

/**
 * Poll `url` until it answers 200, or throw: when one of `procs` exits first (saying `name` exited, and
 * what `said()` gives), or after `timeoutMs`. For the bench's third-party paths at their start.
 */
export async function untilAnswering(
  url: string,
  o: { procs: ChildProcess[]; name: string; said?: () => string; timeoutMs: number; intervalMs?: number },
): Promise<void> {
  await waitFor(
    async () => {
      const gone = o.procs.find((p) => p.exitCode !== null);
      if (gone) throw new Error(`${o.name} exited (${gone.exitCode})${o.said ? `: ${o.said()}` : ""}`);
      try {
        return (await fetch(url)).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: o.timeoutMs, intervalMs: o.intervalMs ?? 100, what: `${o.name} to answer` },
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, HOST, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// A Beta9 gateway with one agent

export interface Beta9 {
  gw: GatewayProc;
  agent: AgentProc;
  /** The agent's machine credential (its control API wants it). */
  machineToken: string;
  /** An inference API key without rpm or tpm limits. */
  key: string;
  control<T>(method: string, route: string, body?: unknown, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/**
 * A real b9gateway and b9agent, started the way the tests start them, the agent allowed to pull the
 * test model's folder. `env` goes to the agent (a PATH with an engine wrapper first, say).
 */
export async function startBeta9(
  opts: { env?: NodeJS.ProcessEnv; gatewayArgs?: string[]; inference?: Record<string, unknown> } = {},
): Promise<Beta9> {
  // One key carries every client's requests here (64 at once): the bench measures the path, not the
  // per-key bound on requests under way (--key-concurrency, 32 by default).
  const gw = await startGateway({ args: ["--key-concurrency", "0", ...(opts.gatewayArgs ?? [])] });
  tempDirs.push(gw.dataDir);
  const cfgPath = await initAgent(gw, { name: "bench-box" });
  tempDirs.push(path.dirname(cfgPath));
  const cfg = YAML.parse(fs.readFileSync(cfgPath, "utf8"));
  cfg.models = { allowed_dirs: [path.dirname(testModelPath())] };
  if (opts.inference) cfg.inference = opts.inference;
  fs.writeFileSync(cfgPath, YAML.stringify(cfg), { mode: 0o600 });
  const agent = await startAgent(cfgPath, { env: opts.env ?? {} });
  const machineToken = String(cfg.machine.token);
  const control = async <T>(method: string, route: string, body?: unknown, timeoutMs = 600_000) => {
    const res = await fetch(agent.controlUrl + route, {
      method,
      headers: {
        authorization: `Bearer ${machineToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const created = await gw.api<{ key: string }>("POST", "/api/v1/keys", {
    name: "bench",
    scopes: ["inference"],
    rpm_limit: null,
    tpm_limit: null,
  });
  if (created.status !== 201) throw new Error(`POST /api/v1/keys: ${created.status}`);
  const agentPid = agent.proc.child.pid!;
  return {
    gw,
    agent,
    machineToken,
    key: created.body.key,
    control,
    async stop() {
      // Engines are the agent's children: note them first, and kill any that outlive the agent.
      for (const pid of processTree(agentPid).slice(1)) killOnExit(pid);
      await agent.proc.stop();
      await gw.proc.stop();
    },
  };
}

/**
 * The agent's log entries from line `from` on, with each engine's own JSON log lines (which the
 * agent passes on as the `msg` of an entry marked with `engine`) parsed too.
 */
export function agentLogs(
  agent: AgentProc,
  from = 0,
): { agent: Record<string, unknown>[]; engine: Record<string, unknown>[] } {
  const entries: Record<string, unknown>[] = [];
  for (const line of agent.proc.lines.slice(from)) {
    try {
      entries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {}
  }
  const engine: Record<string, unknown>[] = [];
  for (const e of entries) {
    if (typeof e.engine !== "string" || typeof e.msg !== "string" || !e.msg.startsWith("{")) continue;
    try {
      engine.push(JSON.parse(e.msg) as Record<string, unknown>);
    } catch {}
  }
  return { agent: entries, engine };
}

/** The builtin engine the agent runs: its pid, the loopback port it listens on, and its key as a header. */
export function builtinEngine(
  agentPid: number,
): { pid: number; port: number; headers: Record<string, string> } | undefined {
  const e = children(agentPid).find((k) => runsBuiltinEngine(k.args));
  const m = e && /--port\s+(\d+)/.exec(e.args);
  if (!e || !m) return undefined;
  const port = Number(m[1]);
  return { pid: e.pid, port, headers: { authorization: `Bearer ${builtinEngineKey(port)}` } };
}

// ---------------------------------------------------------------------------------------------
// Streamed chat answers

export interface StreamedAnswer {
  /** Request sent → first non-empty content delta. */
  ttftMs: number;
  /** First content delta → last content delta. */
  genMs: number;
  totalMs: number;
  /** completion_tokens from the usage chunk, else the number of content deltas. */
  tokens: number;
  text: string;
}

/** POST a streamed chat completion and time its content deltas. Throws unless it ends with [DONE]. */
export async function streamChat(
  url: string,
  headers: Record<string, string>,
  body: Record<string, unknown>,
  dispatcher?: Dispatcher,
): Promise<StreamedAnswer> {
  const t0 = performance.now();
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", ...headers },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    dispatcher,
    headersTimeout: 600_000,
    bodyTimeout: 120_000,
  });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`);
  const decoder = new TextDecoder();
  let buf = "";
  let first = Number.NaN;
  let last = Number.NaN;
  let deltas = 0;
  let tokens = Number.NaN;
  let text = "";
  let done = false;
  for await (const raw of res.body) {
    const now = performance.now();
    buf += decoder.decode(raw as Buffer, { stream: true });
    for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
      const data = buf
        .slice(0, end)
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      buf = buf.slice(end + 2);
      if (data === "") continue;
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      const chunk = JSON.parse(data) as {
        choices?: { delta?: { content?: string } }[];
        usage?: { completion_tokens?: number } | null;
        error?: { message?: string };
      };
      if (chunk.error) throw new Error(`error event: ${chunk.error.message}`);
      const content = chunk.choices?.[0]?.delta?.content ?? "";
      if (content !== "") {
        if (Number.isNaN(first)) first = now;
        last = now;
        deltas++;
        text += content;
      }
      if (typeof chunk.usage?.completion_tokens === "number") tokens = chunk.usage.completion_tokens;
    }
  }
  if (!done) throw new Error("the stream ended without [DONE]");
  return {
    ttftMs: first - t0,
    genMs: last - first,
    totalMs: performance.now() - t0,
    tokens: Number.isNaN(tokens) ? deltas : tokens,
    text,
  };
}

/** Decode rate of a streamed answer: tokens after the first over first → last content delta. */
export const decodeTps = (a: StreamedAnswer) =>
  a.genMs > 0 && a.tokens > 1 ? ((a.tokens - 1) * 1000) / a.genMs : Number.NaN;
