/**
 * Engine bench: a real b9gateway and a real b9agent, the real SmolLM2 GGUF pulled and started on the
 * builtin engine through the agent's control API. Measures the agent's idle RSS, the model's load
 * time, and the same chat workload sent alternately to the builtin engine directly and through the
 * agent's authenticated /v1 proxy, printed side by side as agent/direct ratios. See README.md beside
 * this file.
 *
 *   npx node bench/engine/run.ts [--rounds 10] [--warmup 2] [--max-tokens 64] [--seed 42]
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { parseDuration } from "@beta9/protocol";
import {
  type AgentProc,
  builtinEngineKey,
  type GatewayProc,
  initAgent,
  type Proc,
  runsBuiltinEngine,
  startAgent,
  startGateway,
  TEST_MODEL,
  testModelPath,
} from "@beta9/test-utils";
import { Agent as Dispatcher, request } from "undici";
import YAML from "yaml";
import { children, cpuMs, startedAtMs, statusKb } from "../common/procfs.ts";
import { loadavg1, median, ms, ratio as ratioOf } from "../common/stats.ts";

const HOST = "127.0.0.1";
const MODEL = "smollm2";
const PROMPT = "Write a story about a lighthouse keeper who finds a message in a bottle.";
const IDLE_RSS_GOAL_MB = 80;
const TPS_RATIO_GOAL = 0.98;
/** What the agent's hop may add to the time to first token (p50, on loopback). */
const TTFT_ADDED_GOAL_MS = 10;
/** The supervisor's readiness probe interval (probeIntervalMs's default in engines/supervisor.ts). */
const SUPERVISOR_PROBE_MS = 500;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  rounds: number;
  warmup: number;
  maxTokens: number;
  seed: number;
  /** Measure only once the 1-minute load average is below this. */
  maxLoad: number;
  /** How long to wait for that before measuring anyway. */
  loadWaitMs: number;
  /** How long the agent sits idle before its RSS is sampled. */
  settleMs: number;
  idleSamples: number;
  /** NODE_OPTIONS for the agent process only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
  agentNodeOptions: string;
  /** Nice value for the agent's threads before the workload (0: left as started). */
  agentNice: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      "max-tokens": { type: "string", default: "64" },
      seed: { type: "string", default: "42" },
      "max-load": { type: "string", default: "1.5" },
      "load-wait": { type: "string", default: "3m" },
      settle: { type: "string", default: "5s" },
      "idle-samples": { type: "string", default: "5" },
      "agent-node-options": { type: "string", default: "" },
      "agent-nice": { type: "string", default: "0" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      "usage: npx node bench/engine/run.ts [--rounds 10] [--warmup 2] [--max-tokens 64] [--seed 42]\n" +
        "         [--max-load 1.5] [--load-wait 3m] [--settle 5s] [--idle-samples 5]\n" +
        "         [--agent-node-options='--cpu-prof --cpu-prof-dir=DIR'] [--agent-nice 0..19]\n",
    );
    process.exit(0);
  }
  const whole = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} takes a whole number from ${min} to ${max}`);
    return n;
  };
  const maxLoad = Number(values["max-load"]);
  if (!(maxLoad > 0)) throw new Error("--max-load takes a number above 0");
  return {
    rounds: whole("rounds", values.rounds, 1, 1000),
    warmup: whole("warmup", values.warmup, 0, 100),
    maxTokens: whole("max-tokens", values["max-tokens"], 2, 4096),
    seed: whole("seed", values.seed, 0, 2 ** 31 - 1),
    maxLoad,
    loadWaitMs: parseDuration(values["load-wait"]),
    settleMs: parseDuration(values.settle),
    idleSamples: whole("idle-samples", values["idle-samples"], 1, 100),
    agentNodeOptions: values["agent-node-options"],
    agentNice: whole("agent-nice", values["agent-nice"], 0, 19),
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const p50 = median;
// Engine figures are close to 1×: three digits show the difference.
const ratio = (a: number, b: number) => ratioOf(a, b, 3);
const signedMs = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${ms(x)} ms` : "-");
const num = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "-");
const mb = (kb: number) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : "-");

/** A promise bounded in time: undefined when it did not settle within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const late = new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), ms);
    });
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// /proc

interface Rss {
  rss: number;
  anon: number;
  file: number;
  hwm: number;
}

function rss(pid: number): Rss {
  return {
    rss: statusKb(pid, "VmRSS"),
    anon: statusKb(pid, "RssAnon"),
    file: statusKb(pid, "RssFile"),
    hwm: statusKb(pid, "VmHWM"),
  };
}

const rssText = (r: Rss) => `${mb(r.rss)} (anon ${mb(r.anon)}, file ${mb(r.file)}; peak ${mb(r.hwm)})`;

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes that used the most CPU lately (ps's %CPU is over each one's life), ours excluded. */
function busiest(exclude: readonly number[]): string {
  try {
    const out = execFileSync("ps", ["-eo", "pid=,pcpu=,etime=,args=", "--sort=-pcpu"], { encoding: "utf8" });
    return out
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !exclude.includes(Number(l.split(/\s+/)[0])))
      .slice(0, 4)
      .map((l) => `      ${l.slice(0, 130)}`)
      .join("\n");
  } catch {
    return "      (ps failed)";
  }
}

/** Wait until the 1-minute load average is below opt.maxLoad, at most opt.loadWaitMs. */
async function waitForQuiet(opt: Options, when: string, ours: readonly number[]): Promise<string> {
  const t0 = performance.now();
  let load = loadavg1();
  if (load >= opt.maxLoad)
    process.stdout.write(
      `  ${when}: load average ${load.toFixed(2)} ≥ ${opt.maxLoad}; waiting up to ${(opt.loadWaitMs / 1000).toFixed(0)} s. Busiest processes:\n${busiest(ours)}\n`,
    );
  while (load >= opt.maxLoad && performance.now() - t0 < opt.loadWaitMs) {
    await sleep(5_000);
    load = loadavg1();
  }
  const waited = (performance.now() - t0) / 1000;
  const line =
    load < opt.maxLoad
      ? `${when}: 1-min load average ${load.toFixed(2)} (waited ${waited.toFixed(0)} s)`
      : `${when}: WARNING: 1-min load average still ${load.toFixed(2)} after ${waited.toFixed(0)} s; measured anyway, expect noise`;
  process.stdout.write(`  ${line}\n`);
  return line;
}

// ---------------------------------------------------------------------------------------------
// The processes under test

interface Rig {
  gw?: GatewayProc;
  agent?: AgentProc;
  agentDir?: string;
  enginePids: Set<number>;
}

const rig: Rig = { enginePids: new Set() };

async function stopProc(proc: Proc, graceMs: number): Promise<void> {
  const code = await within(proc.stop("SIGTERM"), graceMs);
  if (code === undefined && proc.child.exitCode === null && proc.child.signalCode === null) {
    proc.child.kill("SIGKILL");
    await within(proc.exited, 5_000);
  }
}

async function teardown(): Promise<string> {
  const notes: string[] = [];
  if (rig.agent) await stopProc(rig.agent.proc, 15_000);
  // The agent stops its engine (and setpriv's pdeathsig and the stdin lifeline back that up).
  for (const pid of rig.enginePids) {
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    if (alive(pid)) {
      notes.push(`engine ${pid} outlived the agent: killed`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  if (rig.gw) await stopProc(rig.gw.proc, 15_000);
  for (const dir of [rig.agentDir, rig.gw?.dataDir])
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  rig.agent = undefined;
  rig.gw = undefined;
  rig.enginePids.clear();
  return notes.length > 0 ? notes.join("; ") : "every process stopped, temp dirs removed";
}

function teardownNow(): void {
  for (const p of [rig.agent?.proc, rig.gw?.proc]) if (p?.child.exitCode === null) p.child.kill("SIGKILL");
  // Only a pid that still runs the engine: a stopped engine's pid may belong to someone else now.
  for (const pid of rig.enginePids) {
    if (!runsBuiltinEngine(cmdline(pid))) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  for (const dir of [rig.agentDir, rig.gw?.dataDir])
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

async function control<T>(method: string, route: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
  const agent = rig.agent!;
  const res = await fetch(agent.controlUrl + route, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

let token = "";

/** The agent's JS heap and external memory, from its own /metrics (prom-client's default metrics). */
async function agentHeap(): Promise<string> {
  try {
    const agent = rig.agent!;
    const res = await fetch(`${agent.controlUrl}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    const metric = (name: string) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, "m").exec(text);
      return m ? Number(m[1]) / 1024 : Number.NaN;
    };
    return (
      `JS heap used ${mb(metric("beta9_agent_nodejs_heap_size_used_bytes"))} of ` +
      `${mb(metric("beta9_agent_nodejs_heap_size_total_bytes"))}, ` +
      `external ${mb(metric("beta9_agent_nodejs_external_memory_bytes"))}`
    );
  } catch (err) {
    return `(no /metrics: ${(err as Error).message})`;
  }
}

/** The builtin engine: the agent's child whose args are `node …/builtin/main.{ts,js} --port N …`. */
function findEngine(agentPid: number): { pid: number; port: number; args: string } {
  const kids = children(agentPid);
  const engine = kids.find((k) => runsBuiltinEngine(k.args));
  if (!engine) throw new Error(`no builtin engine among the agent's children:\n${JSON.stringify(kids)}`);
  const m = /--port\s+(\d+)/.exec(engine.args);
  if (!m) throw new Error(`the engine's args have no --port: ${engine.args}`);
  rig.enginePids.add(engine.pid);
  return { pid: engine.pid, port: Number(m[1]), args: engine.args };
}

// ---------------------------------------------------------------------------------------------
// Model start, timed from the outside and from the logs

interface StartTiming {
  roundTripMs: number;
  enginePid: number;
  /** Agent log "starting smollm2 on builtin" → engine process exec'd (from /proc, ±10 ms). */
  spawnMs: number;
  /** Engine process start → its "builtin engine listening" log line. */
  bootMs: number;
  /** Of bootMs: what the engine's own code took (startup_ms: getLlama, registry, listen). */
  startupMs: number;
  /**
   * Listening → LoadedModel.load began in the engine: the supervisor's wait for its next /health
   * probe, then the agent's POST /admin/models, the GGUF read (readGgufFileInfo) and the estimate.
   */
  probeGapMs: number;
  /** Of probeGapMs, the wait for the next probe, from the supervisor's schedule (an estimate). */
  pollWaitMs: number;
  /** The engine's load_ms for the model. */
  loadMs: number;
  /** Model loaded → agent log "smollm2 is ready". */
  readyGapMs: number;
  /** Engine process start → agent log "smollm2 is ready". */
  processToReadyMs: number;
  /** Agent log "starting" → "ready". */
  agentMs: number;
}

async function timedStart(agent: AgentProc): Promise<StartTiming> {
  const from = agent.proc.lines.length;
  const t0 = performance.now();
  await control("POST", "/inference/start", { model: MODEL }, 600_000);
  const roundTripMs = performance.now() - t0;
  const engine = findEngine(agent.proc.child.pid!);
  const spawnedAt = startedAtMs(engine.pid);
  // The log line is written before the answer, but its pipe may be read after the answer's socket.
  const readyLine = `"msg":"${MODEL} is ready"`;
  for (let i = 0; i < 50 && !agent.proc.lines.slice(from).some((l) => l.includes(readyLine)); i++)
    await sleep(100);

  const entries: Record<string, unknown>[] = [];
  for (const line of agent.proc.lines.slice(from)) {
    try {
      entries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {}
  }
  const engineLines: Record<string, unknown>[] = [];
  for (const e of entries) {
    if (e.engine !== "builtin" || typeof e.msg !== "string" || !e.msg.startsWith("{")) continue;
    try {
      engineLines.push(JSON.parse(e.msg) as Record<string, unknown>);
    } catch {}
  }
  const time = (list: Record<string, unknown>[], msg: string) => {
    const e = list.find((x) => x.msg === msg);
    return { at: typeof e?.time === "number" ? e.time : Number.NaN, e };
  };
  const starting = time(entries, `starting ${MODEL} on builtin`);
  const ready = time(entries, `${MODEL} is ready`);
  const listening = time(engineLines, "builtin engine listening");
  const loaded = time(engineLines, "model loaded");
  const startupMs = Number(listening.e?.startup_ms ?? Number.NaN);
  const loadMs = Number(loaded.e?.load_ms ?? Number.NaN);
  return {
    roundTripMs,
    enginePid: engine.pid,
    spawnMs: spawnedAt - starting.at,
    bootMs: listening.at - spawnedAt,
    startupMs,
    probeGapMs: loaded.at - loadMs - listening.at,
    // Probes run at spawn + k × SUPERVISOR_PROBE_MS (each fails fast until the engine listens).
    pollWaitMs:
      Math.ceil((listening.at - spawnedAt) / SUPERVISOR_PROBE_MS) * SUPERVISOR_PROBE_MS -
      (listening.at - spawnedAt),
    loadMs,
    readyGapMs: ready.at - loaded.at,
    processToReadyMs: ready.at - spawnedAt,
    agentMs: ready.at - starting.at,
  };
}

// ---------------------------------------------------------------------------------------------
// The workload

type Target = "direct" | "agent";
/**
 * stream: streamed chat; whole: the same, not streamed; tiny: max_tokens 1, not streamed; hop: a
 * request the engine refuses at validation (400, no inference), so only the hop itself is timed.
 */
type Kind = "stream" | "whole" | "tiny" | "hop";

interface Sample {
  ok: boolean;
  error?: string;
  /** Request sent → first non-empty content delta (streamed). */
  ttftMs: number;
  /** Request sent → last byte. */
  totalMs: number;
  /** First content delta → last content delta. */
  genMs: number;
  tokens: number;
  chunks: number;
  text: string;
  finish: string;
  /** CPU of the agent, the engine and this process during the request. */
  agentCpuMs: number;
  engineCpuMs: number;
  benchCpuMs: number;
}

const dispatcher = new Dispatcher({ keepAliveTimeout: 60_000, connections: 4 });

interface Endpoints {
  direct: string;
  /** The key the engine takes requests with (only its agent has it; read from its environment). */
  engineKey: string;
  agent: string;
  agentPid: number;
  enginePid: number;
}

function chatBody(opt: Options, kind: Kind): string {
  return JSON.stringify({
    model: MODEL,
    messages: [{ role: "user", content: PROMPT }],
    temperature: 0,
    seed: opt.seed,
    max_tokens: kind === "tiny" ? 1 : opt.maxTokens,
    ...(kind === "stream" ? { stream: true, stream_options: { include_usage: true } } : {}),
    // Not a number: the engine's schema refuses it before any model work; the agent passes it on.
    ...(kind === "hop" ? { top_p: "invalid" } : {}),
  });
}

interface ChatChunk {
  choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
  usage?: { completion_tokens?: number } | null;
  error?: { message?: string };
}

interface ChatWhole {
  choices?: { message?: { content?: string }; finish_reason?: string }[];
  usage?: { completion_tokens?: number };
}

async function one(ep: Endpoints, target: Target, kind: Kind, opt: Options): Promise<Sample> {
  const s: Sample = {
    ok: false,
    ttftMs: Number.NaN,
    totalMs: Number.NaN,
    genMs: Number.NaN,
    tokens: Number.NaN,
    chunks: 0,
    text: "",
    finish: "",
    agentCpuMs: 0,
    engineCpuMs: 0,
    benchCpuMs: 0,
  };
  const body = chatBody(opt, kind);
  const a0 = cpuMs(ep.agentPid);
  const e0 = cpuMs(ep.enginePid);
  const b0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const res = await request(`${target === "direct" ? ep.direct : ep.agent}/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: kind === "stream" ? "text/event-stream" : "application/json",
        authorization: `Bearer ${target === "direct" ? ep.engineKey : token}`,
      },
      body,
      dispatcher,
      signal: AbortSignal.timeout(300_000),
    });
    const expected = kind === "hop" ? 400 : 200;
    if (res.statusCode !== expected) {
      throw new Error(`answered ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
    }
    if (kind === "hop") {
      await res.body.text();
      s.totalMs = performance.now() - t0;
    } else if (kind === "stream") {
      const decoder = new TextDecoder();
      let buf = "";
      let tFirst = Number.NaN;
      let tLast = Number.NaN;
      let done = false;
      for await (const raw of res.body) {
        const now = performance.now();
        buf += decoder.decode(raw as Buffer, { stream: true });
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = event
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (data === "") continue;
          if (data === "[DONE]") {
            done = true;
            continue;
          }
          const chunk = JSON.parse(data) as ChatChunk;
          if (chunk.error) throw new Error(`error event: ${chunk.error.message}`);
          const choice = chunk.choices?.[0];
          const content = choice?.delta?.content ?? "";
          if (content !== "") {
            if (Number.isNaN(tFirst)) tFirst = now;
            tLast = now;
            s.chunks++;
            s.text += content;
          }
          if (choice?.finish_reason) s.finish = choice.finish_reason;
          if (chunk.usage?.completion_tokens !== undefined) s.tokens = chunk.usage.completion_tokens;
        }
      }
      s.totalMs = performance.now() - t0;
      if (!done) throw new Error("the stream ended without [DONE]");
      s.ttftMs = tFirst - t0;
      s.genMs = tLast - tFirst;
      if (Number.isNaN(s.tokens)) s.tokens = s.chunks;
    } else {
      const whole = (await res.body.json()) as ChatWhole;
      s.totalMs = performance.now() - t0;
      s.text = whole.choices?.[0]?.message?.content ?? "";
      s.finish = whole.choices?.[0]?.finish_reason ?? "";
      s.tokens = whole.usage?.completion_tokens ?? Number.NaN;
    }
    s.ok = true;
  } catch (err) {
    s.error = (err as Error).message;
  }
  const b = process.cpuUsage(b0);
  s.agentCpuMs = cpuMs(ep.agentPid) - a0;
  s.engineCpuMs = cpuMs(ep.enginePid) - e0;
  s.benchCpuMs = (b.user + b.system) / 1000;
  return s;
}

/** Streamed decode rate: tokens after the first over the time from the first content delta to the last. */
const decodeTps = (s: Sample) =>
  s.genMs > 0 && s.tokens > 1 ? ((s.tokens - 1) * 1000) / s.genMs : Number.NaN;
/** Whole-request rate: tokens over request sent → last byte. */
const e2eTps = (s: Sample) => (s.totalMs > 0 ? (s.tokens * 1000) / s.totalMs : Number.NaN);

interface Series {
  kind: Kind;
  direct: Sample[];
  agent: Sample[];
  errors: string[];
}

/** Warm-ups, then rounds; each round sends one request to each target, the order alternating. */
async function runSeries(ep: Endpoints, kind: Kind, opt: Options, rounds = opt.rounds): Promise<Series> {
  const out: Series = { kind, direct: [], agent: [], errors: [] };
  for (let i = 0; i < opt.warmup + rounds; i++) {
    const order: Target[] = i % 2 === 0 ? ["direct", "agent"] : ["agent", "direct"];
    for (const target of order) {
      const s = await one(ep, target, kind, opt);
      if (!s.ok) out.errors.push(`${kind} ${target} round ${i}: ${s.error}`);
      if (i >= opt.warmup) out[target].push(s);
    }
  }
  return out;
}

/** Median of agent − direct over the rounds (each round's two requests ran back to back). */
function pairedDelta(series: Series, f: (s: Sample) => number): number {
  const n = Math.min(series.direct.length, series.agent.length);
  const d: number[] = [];
  for (let i = 0; i < n; i++) d.push(f(series.agent[i]!) - f(series.direct[i]!));
  return p50(d);
}

interface Row {
  what: string;
  direct: number;
  agent: number;
  unit: string;
  paired?: number;
}

function seriesRows(series: Series): Row[] {
  const col = (t: Target, f: (s: Sample) => number) => p50(series[t].filter((s) => s.ok).map(f));
  const row = (what: string, unit: string, f: (s: Sample) => number, paired = false): Row => ({
    what,
    unit,
    direct: col("direct", f),
    agent: col("agent", f),
    ...(paired ? { paired: pairedDelta(series, f) } : {}),
  });
  // CPU: the mean, since a single request's share is small and noisy.
  const mean = (t: Target, f: (s: Sample) => number) => {
    const xs = series[t].filter((s) => s.ok).map(f);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const cpu = (what: string, f: (s: Sample) => number): Row => ({
    what: `${what} (mean)`,
    unit: "ms/req",
    direct: mean("direct", f),
    agent: mean("agent", f),
  });
  if (series.kind === "stream")
    return [
      row("TTFT p50", "ms", (s) => s.ttftMs, true),
      row("decode tokens/s p50", "tok/s", decodeTps),
      row("end-to-end tokens/s p50", "tok/s", e2eTps),
      row("total latency p50", "ms", (s) => s.totalMs, true),
      row("completion tokens p50", "", (s) => s.tokens),
      row("content chunks p50", "", (s) => s.chunks),
      cpu("agent CPU", (s) => s.agentCpuMs),
      cpu("engine CPU", (s) => s.engineCpuMs),
      cpu("bench CPU", (s) => s.benchCpuMs),
    ];
  if (series.kind === "whole")
    return [
      row("total latency p50", "ms", (s) => s.totalMs, true),
      row("tokens/s p50", "tok/s", e2eTps),
      row("completion tokens p50", "", (s) => s.tokens),
      cpu("agent CPU", (s) => s.agentCpuMs),
      cpu("engine CPU", (s) => s.engineCpuMs),
    ];
  return [
    row("total latency p50", "ms", (s) => s.totalMs, true),
    cpu("agent CPU", (s) => s.agentCpuMs),
    cpu("engine CPU", (s) => s.engineCpuMs),
  ];
}

function printTable(title: string, rows: Row[]): void {
  const fmt = (x: number, unit: string) =>
    unit === "ms" || unit === "ms/req" ? `${ms(x)} ${unit}` : unit ? `${num(x)} ${unit}` : num(x, 0);
  const head = ["", "direct", "agent", "agent/direct", "agent−direct", "paired Δ p50"];
  const body = rows.map((r) => [
    r.what,
    fmt(r.direct, r.unit),
    fmt(r.agent, r.unit),
    ratio(r.agent, r.direct),
    r.unit === "ms" ? signedMs(r.agent - r.direct) : "",
    r.paired === undefined ? "" : signedMs(r.paired),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  process.stdout.write(`\n  ${title}\n  ${line(head)}\n  ${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const row of body) process.stdout.write(`  ${line(row)}\n`);
}

function sameTexts(series: Series): string {
  const all = [...series.direct, ...series.agent].filter((s) => s.ok);
  const distinct = new Set(all.map((s) => s.text));
  const finishes = [...new Set(all.map((s) => s.finish))].join(", ");
  return distinct.size === 1
    ? `all ${all.length} answers are the same text (finish_reason ${finishes})`
    : `${distinct.size} distinct texts among ${all.length} answers (finish_reason ${finishes})`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opt = options();
  const modelPath = testModelPath();
  // Bounded: two waits for a quiet machine, starts and loads, and the rounds (a request at most ~10 s
  // on a slow CPU at 64 tokens), plus a margin.
  const perRequestMs = Math.max(10_000, opt.maxTokens * 150);
  const budgetMs = 2 * opt.loadWaitMs + 300_000 + (opt.warmup + opt.rounds) * 2 * 3 * perRequestMs;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: gave up after ${(budgetMs / 1000).toFixed(0)} s; cleaning up\n`);
    teardownNow();
    process.exit(2);
  }, budgetMs);
  watchdog.unref();

  process.stdout.write(
    `Engine bench: ${TEST_MODEL.file} on the builtin engine; ${opt.warmup} warm-up + ${opt.rounds} rounds per workload, ` +
      `direct and through the agent alternately; temperature 0, seed ${opt.seed}, max_tokens ${opt.maxTokens}\n` +
      `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM\n` +
      "gateway, agent, engine and bench share this machine: their CPU shows in each other's figures.\n",
  );
  const notes: string[] = [];
  process.stdout.write("\n== Setup ==\n");
  notes.push(await waitForQuiet(opt, "before start", [process.pid]));

  // -- gateway and agent, as the tests start them
  const gw = await startGateway();
  rig.gw = gw;
  const configPath = await initAgent(gw, { name: "bench-engine" });
  rig.agentDir = path.dirname(configPath);
  const cfg = YAML.parse(fs.readFileSync(configPath, "utf8"));
  cfg.models = { allowed_dirs: [path.dirname(modelPath)] };
  fs.writeFileSync(configPath, YAML.stringify(cfg), { mode: 0o600 });
  token = String(cfg.machine.token);
  // NODE_OPTIONS for the agent alone: the builtin engine gets an explicit environment, without it.
  const agent = await startAgent(configPath, {
    env: opt.agentNodeOptions ? { NODE_OPTIONS: opt.agentNodeOptions } : {},
  });
  rig.agent = agent;
  const agentPid = agent.proc.child.pid!;
  const agentCmd = cmdline(agentPid);
  if (!agentCmd.includes("b9agent.js"))
    throw new Error(`pid ${agentPid} is not the agent itself: ${agentCmd}`);
  process.stdout.write(
    `  gateway ${gw.url} (pid ${gw.proc.child.pid}); agent control API ${agent.controlUrl}\n` +
      `  agent pid ${agentPid}: ${agentCmd}\n` +
      (opt.agentNodeOptions ? `  agent NODE_OPTIONS: ${opt.agentNodeOptions}\n` : ""),
  );

  // -- 1. idle RSS
  process.stdout.write("\n== 1. Agent idle, no model ==\n");
  await sleep(opt.settleMs);
  const idle: Rss[] = [];
  for (let i = 0; i < opt.idleSamples; i++) {
    if (i > 0) await sleep(1_000);
    idle.push(rss(agentPid));
  }
  const idleRss = p50(idle.map((r) => r.rss));
  const idleHeap = await agentHeap();
  process.stdout.write(
    `  agent VmRSS after ${(opt.settleMs / 1000).toFixed(0)} s idle, ${idle.length} samples 1 s apart: ` +
      `${idle.map((r) => mb(r.rss)).join(", ")}\n` +
      `  median ${mb(idleRss)}; last sample ${rssText(idle.at(-1)!)}\n` +
      `  agent's own /metrics: ${idleHeap}\n`,
  );

  // -- 2. pull and start
  process.stdout.write("\n== 2. Pull and start ==\n");
  let t = performance.now();
  await control("POST", "/inference/pull", { model: MODEL, source: modelPath }, 300_000);
  const pullMs = performance.now() - t;
  process.stdout.write(
    `  POST /inference/pull (local file, ${(TEST_MODEL.bytes / 1024 ** 2).toFixed(0)} MB copied and hashed into the store): ${ms(pullMs)} ms\n`,
  );
  const afterPull = rss(agentPid);
  const afterPullHeap = await agentHeap();
  const starts: StartTiming[] = [];
  starts.push(await timedStart(agent));
  t = performance.now();
  await control("POST", "/inference/stop", { model: MODEL });
  const stopMs = performance.now() - t;
  for (let i = 0; i < 50 && alive(starts[0]!.enginePid); i++) await sleep(100);
  starts.push(await timedStart(agent));
  const startRows: [string, (s: StartTiming) => number][] = [
    ["POST /inference/start round trip", (s) => s.roundTripMs],
    ['  agent "starting" → engine process exec (±10 ms)', (s) => s.spawnMs],
    ['  engine process start → "builtin engine listening"', (s) => s.bootMs],
    ["    of which the engine's own startup_ms", (s) => s.startupMs],
    ["  listening → model load begins in the engine", (s) => s.probeGapMs],
    ["    of which ≈ waiting for the next /health probe", (s) => s.pollWaitMs],
    ["  model load (engine's load_ms)", (s) => s.loadMs],
    ['  model loaded → agent "ready"', (s) => s.readyGapMs],
    ['engine process start → agent "ready"', (s) => s.processToReadyMs],
    ['agent "starting" → "ready" (agent log)', (s) => s.agentMs],
  ];
  const w0 = Math.max(...startRows.map(([n]) => n.length));
  process.stdout.write(`  ${"".padEnd(w0)}  ${"first".padStart(9)}  ${"second".padStart(9)}\n`);
  for (const [name, f] of startRows)
    process.stdout.write(
      `  ${name.padEnd(w0)}  ${`${ms(f(starts[0]!))} ms`.padStart(9)}  ${`${ms(f(starts[1]!))} ms`.padStart(9)}\n`,
    );
  process.stdout.write(
    `  (second: after POST /inference/stop, ${ms(stopMs)} ms, which stops the engine process with its last model)\n`,
  );

  const engine = findEngine(agentPid);
  const ep: Endpoints = {
    direct: `http://${HOST}:${engine.port}/v1`,
    engineKey: builtinEngineKey(engine.port),
    agent: `${agent.controlUrl}/v1`,
    agentPid,
    enginePid: engine.pid,
  };
  const loadedAgent = rss(agentPid);
  const loadedEngine = rss(engine.pid);
  process.stdout.write(
    `  engine pid ${engine.pid}: ${engine.args}\n  direct: ${ep.direct}   agent: ${ep.agent}\n`,
  );

  // -- 3. the workload
  process.stdout.write("\n== 3. Workload: direct vs through the agent ==\n");
  if (opt.agentNice > 0) {
    // Every thread of the agent (setpriority on Linux takes thread ids); the engine keeps its own.
    const tids = fs.readdirSync(`/proc/${agentPid}/task`).map(Number);
    for (const tid of tids) os.setPriority(tid, opt.agentNice);
    process.stdout.write(
      `  agent's ${tids.length} threads reniced to ${opt.agentNice}; the engine's stay at 0\n`,
    );
  }
  notes.push(
    await waitForQuiet(opt, "before the workload", [process.pid, agentPid, engine.pid, gw.proc.child.pid!]),
  );
  const loadBefore = loadavg1();
  const stream = await runSeries(ep, "stream", opt);
  const whole = await runSeries(ep, "whole", opt);
  const tiny = await runSeries(ep, "tiny", opt);
  const hop = await runSeries(ep, "hop", opt, opt.rounds * 5);
  const loadAfter = loadavg1();
  process.stdout.write(
    `  1-min load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (the engine's own threads count)\n`,
  );
  printTable(
    `streamed chat, max_tokens ${opt.maxTokens}, ${stream.direct.length}+${stream.agent.length} requests; ${sameTexts(stream)}`,
    seriesRows(stream),
  );
  printTable(
    `non-streamed chat, max_tokens ${opt.maxTokens}, ${whole.direct.length}+${whole.agent.length} requests; ${sameTexts(whole)}`,
    seriesRows(whole),
  );
  printTable(
    `non-streamed chat, max_tokens 1 (the hop's fixed cost), ${tiny.direct.length}+${tiny.agent.length} requests`,
    seriesRows(tiny),
  );
  printTable(
    `no inference: the engine refuses the body (400 at validation), ${hop.direct.length}+${hop.agent.length} requests`,
    seriesRows(hop),
  );
  const errors = [...stream.errors, ...whole.errors, ...tiny.errors, ...hop.errors];
  if (errors.length > 0)
    process.stdout.write(`\n  ERRORS (${errors.length}):\n    ${errors.slice(0, 10).join("\n    ")}\n`);
  if (stream.direct[0])
    process.stdout.write(`\n  streamed answer: ${JSON.stringify(stream.direct[0].text.slice(0, 160))}…\n`);

  // -- 4. memory with the model loaded
  process.stdout.write("\n== 4. Memory with the model loaded ==\n");
  const endAgent = rss(agentPid);
  const endHeap = await agentHeap();
  const endEngine = rss(engine.pid);
  process.stdout.write(
    `  agent idle (no model):       ${mb(idleRss)}\n` +
      `  agent after the pull:        ${rssText(afterPull)}\n` +
      `                               ${afterPullHeap}\n` +
      `  agent, model just loaded:    ${rssText(loadedAgent)}\n` +
      `  agent after the workload:    ${rssText(endAgent)}\n` +
      `                               ${endHeap}\n` +
      `  engine, model just loaded:   ${rssText(loadedEngine)}\n` +
      `  engine after the workload:   ${rssText(endEngine)}\n` +
      `  (the engine maps the ${(TEST_MODEL.bytes / 1024 ** 2).toFixed(0)} MB GGUF: file-backed RSS is the model's pages)\n`,
  );

  // -- 5. clean up
  process.stdout.write("\n== 5. Clean-up ==\n");
  const cleanup = await teardown();
  process.stdout.write(`  ${cleanup}\n`);

  // -- summary
  const sr = seriesRows(stream);
  const get = (rows: Row[], what: string) => rows.find((r) => r.what === what)!;
  const ttft = get(sr, "TTFT p50");
  const tps = get(sr, "decode tokens/s p50");
  const e2e = get(sr, "end-to-end tokens/s p50");
  const wholeTotal = get(seriesRows(whole), "total latency p50");
  const tinyTotal = get(seriesRows(tiny), "total latency p50");
  const hopTotal = get(seriesRows(hop), "total latency p50");
  process.stdout.write("\nSummary (agent/direct, p50 of the rounds in this invocation)\n");
  const sum: [string, string][] = [
    ["agent idle RSS", mb(idleRss)],
    ["model start (first / second)", `${ms(starts[0]!.roundTripMs)} ms / ${ms(starts[1]!.roundTripMs)} ms`],
    [
      "streamed TTFT",
      `${ms(ttft.direct)} → ${ms(ttft.agent)} ms = ${ratio(ttft.agent, ttft.direct)} (paired Δ ${signedMs(ttft.paired ?? Number.NaN)})`,
    ],
    ["streamed decode tokens/s", `${num(tps.direct)} → ${num(tps.agent)} = ${ratio(tps.agent, tps.direct)}`],
    [
      "streamed end-to-end tokens/s",
      `${num(e2e.direct)} → ${num(e2e.agent)} = ${ratio(e2e.agent, e2e.direct)}`,
    ],
    [
      "non-streamed latency",
      `${ms(wholeTotal.direct)} → ${ms(wholeTotal.agent)} ms = ${ratio(wholeTotal.agent, wholeTotal.direct)} (paired Δ ${signedMs(wholeTotal.paired ?? Number.NaN)})`,
    ],
    [
      "max_tokens 1 latency",
      `${ms(tinyTotal.direct)} → ${ms(tinyTotal.agent)} ms = ${ratio(tinyTotal.agent, tinyTotal.direct)} (paired Δ ${signedMs(tinyTotal.paired ?? Number.NaN)})`,
    ],
    [
      "no-inference (400) latency",
      `${ms(hopTotal.direct)} → ${ms(hopTotal.agent)} ms = ${ratio(hopTotal.agent, hopTotal.direct)} (paired Δ ${signedMs(hopTotal.paired ?? Number.NaN)})`,
    ],
    ["agent RSS, model loaded", mb(endAgent.rss)],
    ["engine RSS, model loaded", mb(endEngine.rss)],
  ];
  const ws = Math.max(...sum.map(([k]) => k.length));
  for (const [k, v] of sum) process.stdout.write(`  ${k.padEnd(ws)}  ${v}\n`);
  for (const n of notes) process.stdout.write(`  ${n}\n`);

  process.stdout.write("\nGoals\n");
  let ok = errors.length === 0;
  const goal = (name: string, pass: boolean, detail: string) => {
    ok &&= pass;
    process.stdout.write(`  ${name}: ${detail} → ${pass ? "PASS" : "FAIL"}\n`);
  };
  goal(`agent idle RSS under ${IDLE_RSS_GOAL_MB} MB`, idleRss / 1024 < IDLE_RSS_GOAL_MB, mb(idleRss));
  goal(
    `streamed decode tokens/s ratio ≥ ${TPS_RATIO_GOAL}`,
    tps.agent / tps.direct >= TPS_RATIO_GOAL,
    `${(tps.agent / tps.direct).toFixed(4)}×`,
  );
  const added = ttft.paired ?? Number.NaN;
  goal(
    `TTFT added by the agent ≤ ${TTFT_ADDED_GOAL_MS} ms (paired p50)`,
    added <= TTFT_ADDED_GOAL_MS,
    signedMs(added),
  );
  goal("no failed requests", errors.length === 0, `${errors.length} errors`);
  clearTimeout(watchdog);
  await dispatcher.close();
  process.exitCode = ok ? 0 : 1;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    teardownNow();
    process.exit(130);
  });
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  const agentTail = rig.agent?.proc.lines.slice(-15).join("\n");
  if (agentTail) process.stderr.write(`agent log (last lines):\n${agentTail}\n`);
  await within(teardown(), 30_000).catch(() => {});
  teardownNow();
  process.exit(2);
});
