/**
 * Heartbeat load bench: a real b9gateway process per size N, and N simulated agents in worker
 * processes (fleet.ts) that speak the real agent protocol (join, upgrade to the agent channel, beat on
 * the channel's idle form or the HTTP/2 heartbeat stream). Measures heartbeat round trips, GET /api/v1/machines latency and the
 * gateway's CPU and RSS in steady state. See README.md beside this file.
 *
 *   npx node bench/heartbeats/run.ts [--sizes 10,100,1000,10000] [--duration 30s] [--interval 5s]
 *     [--agent-procs N]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { AGENT_PROTOCOL, type MachineList, parseDuration } from "@beta9/protocol";
import { clusterDatabase } from "@beta9/test-utils";
import { AgentProcs, type FleetReport, lagMs } from "./fleet.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const GATEWAY_BIN = path.join(ROOT, "packages/gateway/bin/b9gateway.js");
const HOST = "127.0.0.1";
const BASELINE_N = 10;
const RSS_GOAL_MB = 300;
const RSS_GOAL_N = 10_000;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  sizes: number[];
  durationMs: number;
  /** The steady-state window at N=10 (the baseline): longer than --duration for a p99 from enough beats. */
  baselineMs: number;
  intervalMs: number;
  concurrency: number;
  pollMs: number;
  /** Poll GET /api/v1/machines during steady state (off: heartbeats alone, to tell the costs apart). */
  listPoll: boolean;
  /** Extra node flags for the gateway process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
  gatewayNodeArgs: string[];
  /** The gateway's bin script (default: this checkout's), e.g. to compare a patched copy. */
  gatewayBin: string;
  /** Gateway replicas on one PostgreSQL (a fresh database on BETA9_TEST_DATABASE_URL's server); 1: SQLite. */
  replicas: number;
  /** The agent protocol the simulated agents claim: 2 gets the channel's idle form, 1 HTTP/2 throughout. */
  protocol: number;
  /** Worker processes for the simulated agents; 0: one per AGENTS_PER_PROC agents of the size. */
  agentProcs: number;
  /** Where each gateway's log is kept when it stops (e.g. its --trace-gc lines); none: not kept. */
  gatewayLogDir: string | undefined;
}

/** Auto: few enough sockets per worker for the usual open-files limits, and a stall in one is a few agents'. */
const AGENTS_PER_PROC = 5_000;

/** The steady-state window at size n: the baseline's may be longer (--baseline-duration). */
function windowOf(opt: Options, n: number): number {
  return n === BASELINE_N ? opt.baselineMs : opt.durationMs;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "10,100,1000,10000" },
      duration: { type: "string", default: "30s" },
      "baseline-duration": { type: "string" },
      interval: { type: "string", default: "5s" },
      concurrency: { type: "string", default: "64" },
      "no-list-poll": { type: "boolean", default: false },
      "gateway-node-args": { type: "string", default: "" },
      "gateway-bin": { type: "string", default: GATEWAY_BIN },
      protocol: { type: "string", default: String(AGENT_PROTOCOL) },
      replicas: { type: "string", default: "1" },
      "agent-procs": { type: "string", default: "auto" },
      "gateway-log-dir": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      "usage: npx node bench/heartbeats/run.ts [--sizes 10,100,1000,10000] [--duration 30s] [--interval 5s]\n" +
        `         [--baseline-duration 30s (N=${BASELINE_N}'s window; its p99 needs ~1,000 beats: 10m at 5 s)]\n` +
        "         [--concurrency 64] [--no-list-poll] [--gateway-node-args='--cpu-prof --cpu-prof-dir=DIR']\n" +
        "         [--gateway-bin packages/gateway/bin/b9gateway.js] [--replicas 3 (N agents per replica)]\n" +
        "         [--protocol 2 (1: the agents keep an HTTP/2 session each, as agents before protocol 2)]\n" +
        `         [--agent-procs auto (worker processes for the simulated agents; auto: one per ${AGENTS_PER_PROC})]\n` +
        "         [--gateway-log-dir DIR (keep each gateway's log, e.g. with --gateway-node-args=--trace-gc)]\n",
    );
    process.exit(0);
  }
  const sizes = values.sizes
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n > 50_000)) {
    throw new Error("--sizes takes a comma-separated list of whole numbers from 1 to 50000");
  }
  // The baseline runs in the same invocation, so ratios compare like with like.
  if (!sizes.includes(BASELINE_N)) sizes.unshift(BASELINE_N);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error("--concurrency takes a whole number ≥ 1");
  const protocol = Number(values.protocol);
  if (protocol !== 1 && protocol !== 2) throw new Error("--protocol takes 1 or 2");
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 8)
    throw new Error("--replicas takes a whole number from 1 to 8");
  const agentProcs = values["agent-procs"] === "auto" ? 0 : Number(values["agent-procs"]);
  if (!Number.isInteger(agentProcs) || agentProcs < 0 || agentProcs > 64)
    throw new Error("--agent-procs takes auto or a whole number from 1 to 64");
  if (replicas > 1 && !process.env.BETA9_TEST_DATABASE_URL)
    throw new Error("--replicas needs PostgreSQL: export BETA9_TEST_DATABASE_URL=$(scripts/postgres start)");
  return {
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    durationMs: parseDuration(values.duration),
    baselineMs: parseDuration(values["baseline-duration"] ?? values.duration),
    intervalMs: parseDuration(values.interval),
    concurrency,
    pollMs: 1_000,
    listPoll: !values["no-list-poll"],
    gatewayNodeArgs: values["gateway-node-args"].split(" ").filter(Boolean),
    gatewayBin: path.resolve(values["gateway-bin"]),
    replicas,
    protocol,
    agentProcs,
    gatewayLogDir: values["gateway-log-dir"] ? path.resolve(values["gateway-log-dir"]) : undefined,
  };
}

/** Worker processes for `total` simulated agents. */
function procsFor(total: number, opt: Options): number {
  return opt.agentProcs || Math.max(1, Math.ceil(total / AGENTS_PER_PROC));
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function sorted(xs: number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

const ms = (x: number) =>
  Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : "-";
const pct = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)}%` : "-");
const ratio = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "-";
const kb = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} KB`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Open files allowed: each agent worker holds its agents' sockets, the gateway (which inherits the limit) N. */
function ensureFdLimit(need: number): string {
  const soft = () => {
    const line = fs
      .readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const v = line?.split(/\s{2,}/)[1];
    return v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v);
  };
  const before = soft();
  if (before >= need) return `open files limit ${before}`;
  const want = Math.max(65_536, need);
  try {
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${want}:${want}`], { stdio: "ignore" });
  } catch {
    try {
      execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${want}`], { stdio: "ignore" });
    } catch {}
  }
  const after = soft();
  if (after < need) {
    process.stderr.write(
      `warning: open files limit is ${after}, the largest size needs about ${need}; run as root or raise \`ulimit -n\`\n`,
    );
  }
  return `open files limit ${before} → ${after}`;
}

// ---------------------------------------------------------------------------------------------
// /proc sampling of the gateway process

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

function rssMb(pid: number): number {
  return statusKb(pid, "VmRSS") / 1024;
}

// ---------------------------------------------------------------------------------------------
// The gateway under test

interface GatewayProc {
  child: ChildProcess;
  pid: number;
  port: number;
  base: string;
  adminKey: string;
  dir: string;
  logPath: string;
  exited: boolean;
}

const live = new Set<GatewayProc>();
/** --gateway-log-dir: where stopGateway copies each gateway's log. */
let keepLogsIn: string | undefined;
/** Agent workers running now, killed with the gateways on a signal or a watchdog. */
const fleets = new Set<AgentProcs>();

async function startGateway(
  opt: Options,
  shared?: { databaseUrl: string; adminKey?: string },
): Promise<GatewayProc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b9-bench-hb-"));
  const dataDir = path.join(dir, "data");
  const logPath = path.join(dir, "gateway.log");
  const port = await freePort();
  const logFd = fs.openSync(logPath, "a");
  const child = spawn(
    process.execPath,
    [
      ...opt.gatewayNodeArgs,
      opt.gatewayBin,
      "--data-dir",
      dataDir,
      "--host",
      HOST,
      "--port",
      String(port),
      "--heartbeat-interval",
      `${opt.intervalMs}ms`,
      ...(shared ? ["--database-url", shared.databaseUrl] : []),
    ],
    { stdio: ["ignore", logFd, logFd], env: process.env },
  );
  fs.closeSync(logFd);
  const gw: GatewayProc = {
    child,
    pid: child.pid ?? -1,
    port,
    base: `http://${HOST}:${port}`,
    adminKey: "",
    dir,
    logPath,
    exited: false,
  };
  live.add(gw);
  child.once("exit", () => {
    gw.exited = true;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gw.exited) throw new Error(`the gateway exited at start:\n${logTail(gw)}`);
    if (Date.now() > deadline)
      throw new Error(`the gateway did not answer /health within 30 s:\n${logTail(gw)}`);
    try {
      const res = await fetch(`${gw.base}/health`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {}
    await sleep(100);
  }
  // Only the replica that made the store writes the admin key; the others share it.
  gw.adminKey = shared?.adminKey ?? fs.readFileSync(path.join(dataDir, "admin-key"), "utf8").trim();
  return gw;
}

function logTail(gw: GatewayProc, lines = 20): string {
  try {
    return fs.readFileSync(gw.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function stopGateway(gw: GatewayProc): Promise<void> {
  if (!gw.exited) {
    const exited = new Promise<void>((r) => gw.child.once("exit", () => r()));
    gw.child.kill("SIGTERM");
    const killed = await Promise.race([exited.then(() => true), sleep(12_000).then(() => false)]);
    if (!killed) {
      gw.child.kill("SIGKILL");
      await exited;
    }
  }
  if (keepLogsIn) {
    const kept = path.join(keepLogsIn, `gateway-${gw.pid}.log`);
    fs.mkdirSync(keepLogsIn, { recursive: true });
    fs.copyFileSync(gw.logPath, kept);
    process.stdout.write(`  gateway log kept: ${kept}\n`);
  }
  fs.rmSync(gw.dir, { recursive: true, force: true });
  live.delete(gw);
}

function stopAllNow(): void {
  for (const f of fleets) f.killNow();
  fleets.clear();
  for (const gw of live) {
    if (!gw.exited) gw.child.kill("SIGKILL");
    fs.rmSync(gw.dir, { recursive: true, force: true });
  }
  live.clear();
}

async function adminJson<T>(gw: GatewayProc, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${gw.base}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${gw.adminKey}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** Prometheus text → one gauge's value. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Count and seconds of the gateway's collections so far, by kind (minor, major, incremental, ...). */
function gcTotals(text: string): Map<string, { count: number; seconds: number }> {
  const out = new Map<string, { count: number; seconds: number }>();
  const re = /^beta9_gateway_nodejs_gc_duration_seconds_(count|sum)\{kind="([a-z]+)"\} ([0-9.eE+-]+)$/gm;
  for (const m of text.matchAll(re)) {
    const t = out.get(m[2]!) ?? { count: 0, seconds: 0 };
    if (m[1] === "count") t.count = Number(m[3]);
    else t.seconds = Number(m[3]);
    out.set(m[2]!, t);
  }
  return out;
}

function gcSince(
  before: Map<string, { count: number; seconds: number }>,
  after: Map<string, { count: number; seconds: number }>,
): string {
  const parts: string[] = [];
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { count: 0, seconds: 0 };
    if (a.count > b.count)
      parts.push(`${kind} ${a.count - b.count}× ${((a.seconds - b.seconds) * 1000).toFixed(0)} ms`);
  }
  return parts.join(", ") || "none";
}

async function scrapeMetrics(gw: GatewayProc): Promise<string> {
  try {
    const res = await fetch(`${gw.base}/metrics`, {
      headers: { authorization: `Bearer ${gw.adminKey}` },
      signal: AbortSignal.timeout(30_000),
    });
    return await res.text();
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// One size

interface Result {
  n: number;
  joined: number;
  channels: number;
  streams: number;
  connectS: number;
  joinErrors: number;
  channelErrors: number;
  firstError: string;
  durationS: number;
  ackRate: number;
  expectedRate: number;
  sentInWindow: number;
  ackedInWindow: number;
  missing: number;
  skipped: number;
  badAcks: number;
  streamsClosed: number;
  statuses: string;
  /** Heartbeat round trips measured in the window (what hbP99 is taken from). */
  beats: number;
  hbP50: number;
  hbP90: number;
  hbP99: number;
  hbMax: number;
  listN: number;
  listP50: number;
  listP99: number;
  listMax: number;
  listBytes: number;
  listErrors: number;
  cpuAvg: number;
  cpuMax: number;
  rssEnd: number;
  rssMax: number;
  rssAnon: number;
  rssFile: number;
  heapUsed: number;
  /** What V8 holds for the heap (used plus room to grow): RSS follows this, not heapUsed. */
  heapTotal: number;
  external: number;
  gwLagP50: number;
  gwLagP99: number;
  gwLagMax: number;
  /** The gateway's collections in the window, by kind (prom-client's nodejs_gc_duration_seconds). */
  gc: string;
  /** Worker processes the simulated agents ran in. */
  agentProcs: number;
  benchCpu: number;
  benchLagP99: number;
  benchLagMax: number;
  benchRss: number;
  ready: number;
  onChannel: number;
  listed: number;
}

/** Every machine a gateway lists (the list is paged: follow `next`). */
async function listAll(gw: GatewayProc): Promise<MachineList["machines"]> {
  const all: MachineList["machines"] = [];
  for (let after: string | null = ""; after !== null; ) {
    const page: MachineList = await adminJson<MachineList>(
      gw,
      "GET",
      `/api/v1/machines?limit=5000${after ? `&after=${encodeURIComponent(after)}` : ""}`,
    );
    all.push(...page.machines);
    after = page.next;
  }
  return all;
}

/** What the agents' workers need of the gateways under test. */
function fleetSpec(gws: GatewayProc[], token: string, total: number, opt: Options) {
  return {
    gateways: gws.map((gw) => ({ host: HOST, port: gw.port, base: gw.base })),
    token,
    protocol: opt.protocol,
    intervalMs: opt.intervalMs,
    concurrency: opt.concurrency,
    connectBudgetMs: Math.max(60_000, total * 20),
  };
}

/** After the window: wait for late acks of beats sent in it (they still count for their round trip). */
async function collect(fleet: AgentProcs, opt: Options): Promise<FleetReport> {
  await fleet.endWindow();
  const graceEnd = performance.now() + Math.max(2_000, opt.intervalMs);
  while ((await fleet.pendingInWindow()) > 0 && performance.now() < graceEnd) await sleep(100);
  return fleet.report();
}

async function runSize(n: number, opt: Options): Promise<Result> {
  const gw = await startGateway(opt);
  let fleet: AgentProcs | undefined;
  try {
    const tok = await adminJson<{ token: string }>(gw, "POST", "/api/v1/tokens", {
      pool: "external",
      uses: n,
      ttl_seconds: 3_600,
    });
    fleet = await AgentProcs.start(fleetSpec([gw], tok.token, n, opt), n, procsFor(n, opt));
    fleets.add(fleet);
    const connectStart = performance.now();
    const c = await fleet.connect();
    const connectS = (performance.now() - connectStart) / 1000;
    process.stdout.write(
      `  connected ${c.connected}/${n} channels, ${c.streams} heartbeat streams, in ${connectS.toFixed(1)} s` +
        ` (${(c.connected / connectS).toFixed(0)}/s) from ${fleet.count} agent processes` +
        `${c.redials ? `, ${c.redials} channels dialled again` : ""}` +
        `${c.firstError ? `; first error: ${c.firstError}` : ""}\n`,
    );

    // Warm up for one interval so every agent is on its schedule, then measure. One list call first,
    // so the window does not time the serializer's first (compiling) run.
    const warmStart = performance.now();
    if (opt.listPoll) await adminJson<MachineList>(gw, "GET", "/api/v1/machines");
    await sleep(Math.max(0, opt.intervalMs - (performance.now() - warmStart)));
    const gc0 = gcTotals(await scrapeMetrics(gw)); // the scrape also resets the event-loop-lag histogram
    await fleet.startWindow(windowOf(opt, n));
    const cpu0 = cpuSeconds(gw.pid);
    const wall0 = performance.now();
    const windowEnd = wall0 + windowOf(opt, n);

    const listLat: number[] = [];
    let listBytes = 0;
    let listErrors = 0;
    const cpuSamples: number[] = [];
    const rssSamples: number[] = [rssMb(gw.pid)];
    let lastCpu = cpu0;
    let lastT = wall0;
    for (let k = 1; performance.now() < windowEnd; k++) {
      const t = performance.now();
      if (opt.listPoll)
        try {
          const res = await fetch(`${gw.base}/api/v1/machines`, {
            headers: { authorization: `Bearer ${gw.adminKey}` },
            signal: AbortSignal.timeout(30_000),
          });
          const buf = await res.arrayBuffer();
          if (!res.ok) throw new Error(`answered ${res.status}`);
          listLat.push(performance.now() - t);
          listBytes = buf.byteLength;
        } catch {
          listErrors++;
        }
      const next = wall0 + k * opt.pollMs;
      const wait = Math.min(next, windowEnd) - performance.now();
      if (wait > 0) await sleep(wait);
      const now = performance.now();
      const cpu = cpuSeconds(gw.pid);
      cpuSamples.push(((cpu - lastCpu) / ((now - lastT) / 1000)) * 100);
      rssSamples.push(rssMb(gw.pid));
      lastCpu = cpu;
      lastT = now;
    }
    const wall1 = performance.now();
    const cpu1 = cpuSeconds(gw.pid);
    const metricsText = await scrapeMetrics(gw);
    const windowS = (wall1 - wall0) / 1000;
    const report = await collect(fleet, opt);
    const beats = report.replicas[0]!;

    // Every machine should be READY on the channel now.
    const list = { machines: await listAll(gw) };
    const ready = list.machines.filter((m) => m.status === "READY").length;
    const onChannel = list.machines.filter((m) => m.connection === "channel").length;

    const rtt = sorted(beats.rtts);
    const lat = sorted(listLat);
    return {
      n,
      joined: c.joined,
      channels: c.connected,
      streams: c.streams,
      connectS,
      joinErrors: c.joinErrors,
      channelErrors: c.channelErrors,
      firstError: c.firstError,
      durationS: windowS,
      ackRate: beats.acksReceivedInWindow / windowS,
      expectedRate: (c.streams * 1000) / opt.intervalMs,
      sentInWindow: beats.sentInWindow,
      ackedInWindow: beats.ackedInWindow,
      missing: beats.missing,
      skipped: beats.skipped,
      badAcks: beats.badAcks,
      streamsClosed: beats.streamsClosed,
      statuses:
        Object.entries(beats.statuses)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "-",
      beats: rtt.length,
      hbP50: percentile(rtt, 50),
      hbP90: percentile(rtt, 90),
      hbP99: percentile(rtt, 99),
      hbMax: percentile(rtt, 100),
      listN: lat.length,
      listP50: percentile(lat, 50),
      listP99: percentile(lat, 99),
      listMax: percentile(lat, 100),
      listBytes,
      listErrors,
      cpuAvg: ((cpu1 - cpu0) / windowS) * 100,
      cpuMax: Math.max(...cpuSamples),
      rssEnd: rssSamples[rssSamples.length - 1]!,
      rssMax: Math.max(...rssSamples),
      rssAnon: statusKb(gw.pid, "RssAnon") / 1024,
      rssFile: statusKb(gw.pid, "RssFile") / 1024,
      heapUsed: metric(metricsText, "beta9_gateway_nodejs_heap_size_used_bytes") / 1024 / 1024,
      heapTotal: metric(metricsText, "beta9_gateway_nodejs_heap_size_total_bytes") / 1024 / 1024,
      external: metric(metricsText, "beta9_gateway_nodejs_external_memory_bytes") / 1024 / 1024,
      gwLagP50: lagMs(metric(metricsText, "beta9_gateway_nodejs_eventloop_lag_p50_seconds") * 1e9),
      gwLagP99: lagMs(metric(metricsText, "beta9_gateway_nodejs_eventloop_lag_p99_seconds") * 1e9),
      gwLagMax: lagMs(metric(metricsText, "beta9_gateway_nodejs_eventloop_lag_max_seconds") * 1e9),
      gc: gcSince(gc0, gcTotals(metricsText)),
      agentProcs: fleet.count,
      benchCpu: report.cpu,
      benchLagP99: report.lagP99,
      benchLagMax: report.lagMax,
      benchRss: report.rssMb,
      ready,
      onChannel,
      listed: list.machines.length,
    };
  } catch (err) {
    process.stdout.write(`  gateway log (last lines):\n${logTail(gw)}\n`);
    throw err;
  } finally {
    if (fleet) {
      await fleet.close();
      fleets.delete(fleet);
    }
    await stopGateway(gw);
  }
}

// ---------------------------------------------------------------------------------------------
// Several replicas on one PostgreSQL: N agents on each, every replica listing all of them

interface ReplicaResult {
  n: number;
  replica: number;
  streams: number;
  samples: number;
  hbP50: number;
  hbP99: number;
  listP50: number;
  listP99: number;
  cpuAvg: number;
  rssMax: number;
  gwLagP99: number;
  gwLagMax: number;
  gc: string;
  listed: number;
  ready: number;
  benchLagMax: number;
}

async function runReplicas(n: number, opt: Options): Promise<ReplicaResult[]> {
  const db = await clusterDatabase();
  const gws: GatewayProc[] = [];
  const total = n * opt.replicas;
  let fleet: AgentProcs | undefined;
  try {
    // The first replica makes the store and the admin key; the others start on it.
    gws.push(await startGateway(opt, { databaseUrl: db.url }));
    for (let r = 1; r < opt.replicas; r++)
      gws.push(await startGateway(opt, { databaseUrl: db.url, adminKey: gws[0]!.adminKey }));
    const tok = await adminJson<{ token: string }>(gws[0]!, "POST", "/api/v1/tokens", {
      pool: "external",
      uses: total,
      ttl_seconds: 3_600,
    });
    fleet = await AgentProcs.start(fleetSpec(gws, tok.token, total, opt), total, procsFor(total, opt));
    fleets.add(fleet);
    const connectStart = performance.now();
    const c = await fleet.connect();
    process.stdout.write(
      `  ${c.streams}/${total} heartbeat streams on ${gws.length} replicas from ${fleet.count} agent processes ` +
        `in ${((performance.now() - connectStart) / 1000).toFixed(1)} s` +
        `${c.redials ? `, ${c.redials} channels dialled again` : ""}` +
        `${c.joinErrors + c.channelErrors ? `; ${c.joinErrors + c.channelErrors} errors, first: ${c.firstError}` : ""}\n`,
    );
    // As for one gateway: a first list call on each, one interval of warm-up, then the window.
    if (opt.listPoll) for (const gw of gws) await adminJson<MachineList>(gw, "GET", "/api/v1/machines");
    await sleep(opt.intervalMs);
    const gc0 = await Promise.all(gws.map(async (gw) => gcTotals(await scrapeMetrics(gw))));
    await fleet.startWindow(windowOf(opt, n));
    const wall0 = performance.now();
    const end = wall0 + windowOf(opt, n);
    const lists = gws.map(() => [] as number[]);
    const rss = gws.map((gw) => [rssMb(gw.pid)]);
    const cpu0 = gws.map((gw) => cpuSeconds(gw.pid));
    for (let k = 1; performance.now() < end; k++) {
      if (opt.listPoll)
        await Promise.all(
          gws.map(async (gw, r) => {
            const t = performance.now();
            try {
              const res = await fetch(`${gw.base}/api/v1/machines`, {
                headers: { authorization: `Bearer ${gw.adminKey}` },
                signal: AbortSignal.timeout(30_000),
              });
              await res.arrayBuffer();
              if (res.ok) lists[r]!.push(performance.now() - t);
            } catch {}
          }),
        );
      const wait = Math.min(wall0 + k * opt.pollMs, end) - performance.now();
      if (wait > 0) await sleep(wait);
      for (const [r, gw] of gws.entries()) rss[r]!.push(rssMb(gw.pid));
    }
    const windowS = (performance.now() - wall0) / 1000;
    const cpu = gws.map((gw, r) => ((cpuSeconds(gw.pid) - cpu0[r]!) / windowS) * 100);
    const metricsTexts = await Promise.all(gws.map((gw) => scrapeMetrics(gw)));
    const report = await collect(fleet, opt);
    const out: ReplicaResult[] = [];
    for (const [r, gw] of gws.entries()) {
      const all = await listAll(gw);
      const beats = report.replicas[r]!;
      const rtt = sorted(beats.rtts);
      const lat = sorted(lists[r]!);
      const mt = metricsTexts[r]!;
      out.push({
        n,
        replica: r + 1,
        streams: beats.streams,
        samples: rtt.length,
        hbP50: percentile(rtt, 50),
        hbP99: percentile(rtt, 99),
        listP50: percentile(lat, 50),
        listP99: percentile(lat, 99),
        cpuAvg: cpu[r]!,
        rssMax: Math.max(...rss[r]!),
        gwLagP99: lagMs(metric(mt, "beta9_gateway_nodejs_eventloop_lag_p99_seconds") * 1e9),
        gwLagMax: lagMs(metric(mt, "beta9_gateway_nodejs_eventloop_lag_max_seconds") * 1e9),
        gc: gcSince(gc0[r]!, gcTotals(mt)),
        listed: all.length,
        ready: all.filter((m) => m.status === "READY").length,
        benchLagMax: report.lagMax,
      });
    }
    return out;
  } finally {
    if (fleet) {
      await fleet.close();
      fleets.delete(fleet);
    }
    for (const gw of gws) await stopGateway(gw);
    await db.drop();
  }
}

/** Per replica, with each replica's heartbeat p99 against its own at N=10 in the same run. */
function printReplicas(results: ReplicaResult[], replicas: number): boolean {
  const base = new Map(results.filter((r) => r.n === BASELINE_N).map((r) => [r.replica, r]));
  process.stdout.write(
    `\nSummary: ${replicas} replicas on one PostgreSQL, N agents on each, every replica listing all N·${replicas}\n` +
      "    N  replica  streams  hb p50   hb p99  p99 ratio  list p50  list p99  gw CPU  gw RSS max  listed  READY\n",
  );
  let ok = true;
  for (const r of results) {
    const b = base.get(r.replica);
    ok &&= r.ready === r.n * replicas;
    process.stdout.write(
      `${String(r.n).padStart(5)}  ${String(r.replica).padStart(7)}  ${String(r.streams).padStart(7)}  ` +
        `${`${ms(r.hbP50)} ms`.padStart(7)}  ${`${ms(r.hbP99)} ms`.padStart(7)}  ${(b ? ratio(r.hbP99, b.hbP99) : "-").padStart(9)}  ` +
        `${`${ms(r.listP50)} ms`.padStart(8)}  ${`${ms(r.listP99)} ms`.padStart(8)}  ${pct(r.cpuAvg).padStart(6)}  ` +
        `${`${r.rssMax.toFixed(0)} MB`.padStart(10)}  ${String(r.listed).padStart(6)}  ${String(r.ready).padStart(5)}\n`,
    );
  }
  process.stdout.write(
    "  gateway event-loop lag p99 / max, GC in the window; agent processes' worst event-loop lag:\n",
  );
  for (const r of results)
    process.stdout.write(
      `    N=${r.n} replica ${r.replica}: lag ${ms(r.gwLagP99)} / ${ms(r.gwLagMax)} ms, GC ${r.gc}; agents' lag max ${ms(r.benchLagMax)} ms\n`,
    );
  process.stdout.write(`  every replica lists every machine READY: ${ok ? "PASS" : "FAIL"}\n`);
  return ok;
}

function printResult(r: Result, opt: Options): void {
  const w = (s: string) => process.stdout.write(`  ${s}\n`);
  w(
    `agents: ${r.channels}/${r.n} connected (joined ${r.joined}, join errors ${r.joinErrors}, channel errors ${r.channelErrors})`,
  );
  w(
    `heartbeats handled: ${r.ackRate.toFixed(1)} acks/s over ${r.durationS.toFixed(1)} s ` +
      `(expected ${r.expectedRate.toFixed(1)}/s at one per ${opt.intervalMs / 1000} s); ` +
      `sent in window ${r.sentInWindow}, acked ${r.ackedInWindow}, missing ${r.missing}, ` +
      `skipped (stream not open yet) ${r.skipped}, bad acks ${r.badAcks}, streams closed ${r.streamsClosed}; ack status: ${r.statuses}`,
  );
  w(
    `heartbeat RTT (write → ack read, ${r.ackedInWindow} samples): p50 ${ms(r.hbP50)} ms, ` +
      `p90 ${ms(r.hbP90)} ms, p99 ${ms(r.hbP99)} ms, max ${ms(r.hbMax)} ms`,
  );
  w(
    opt.listPoll
      ? `GET /api/v1/machines (once a second): ${r.listN} polls, p50 ${ms(r.listP50)} ms, p99 ${ms(r.listP99)} ms, ` +
          `max ${ms(r.listMax)} ms, response ${kb(r.listBytes)}${r.listErrors ? `, ${r.listErrors} errors` : ""}`
      : "GET /api/v1/machines: not polled",
  );
  w(
    `gateway: CPU ${pct(r.cpuAvg)} avg (max 1 s sample ${pct(r.cpuMax)}; 100% = one core), ` +
      `RSS ${r.rssEnd.toFixed(0)} MB (max ${r.rssMax.toFixed(0)} MB; anon ${r.rssAnon.toFixed(0)} MB, ` +
      `file ${r.rssFile.toFixed(0)} MB; JS heap used ${r.heapUsed.toFixed(0)} MB of ${r.heapTotal.toFixed(0)} MB, external ${r.external.toFixed(0)} MB), ` +
      `event-loop lag p50 ${ms(r.gwLagP50)} ms, p99 ${ms(r.gwLagP99)} ms, max ${ms(r.gwLagMax)} ms; GC ${r.gc}`,
  );
  w(
    `agent processes (${r.agentProcs}): CPU ${pct(r.benchCpu)} avg together, event-loop delay p99 ${ms(r.benchLagP99)} ms, ` +
      `max ${ms(r.benchLagMax)} ms (the worst process), RSS ${r.benchRss.toFixed(0)} MB together`,
  );
  w(
    `final GET /api/v1/machines: ${r.listed} listed, ${r.ready} READY, ${r.onChannel} on the channel` +
      ` → ${r.ready === r.n ? "all READY" : "NOT all READY"}`,
  );
}

function printSummary(results: Result[], opt: Options): boolean {
  const base = results.find((r) => r.n === BASELINE_N);
  const head = [
    "N",
    "agents",
    "hb/s",
    "hb p50",
    "hb p99",
    "p99 ratio",
    "list p50",
    "list p99",
    "list ratio",
    "list size",
    "gw CPU",
    "gw RSS max",
    "gw lag max",
    "bench CPU",
    "READY",
  ];
  const rows = results.map((r) => [
    String(r.n),
    String(r.channels),
    r.ackRate.toFixed(1),
    `${ms(r.hbP50)} ms`,
    `${ms(r.hbP99)} ms`,
    base ? ratio(r.hbP99, base.hbP99) : "-",
    `${ms(r.listP50)} ms`,
    `${ms(r.listP99)} ms`,
    base ? ratio(r.listP99, base.listP99) : "-",
    kb(r.listBytes),
    pct(r.cpuAvg),
    `${r.rssMax.toFixed(0)} MB`,
    `${ms(r.gwLagMax)} ms`,
    pct(r.benchCpu),
    `${r.ready}/${r.n}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
  process.stdout.write(`\nSummary (ratios against N=${BASELINE_N}, run in this invocation)\n`);
  process.stdout.write(`${line(head)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);

  let ok = true;
  const largest = results[results.length - 1]!;
  process.stdout.write("\nGoals\n");
  if (base && largest.n !== base.n) {
    const r = largest.hbP99 / base.hbP99;
    const pass = r <= 2;
    ok &&= pass;
    process.stdout.write(
      `  heartbeat p99 at N=${largest.n} within 2× of N=${BASELINE_N}: ${ms(largest.hbP99)} ms vs ${ms(base.hbP99)} ms` +
        ` = ${r.toFixed(2)}× → ${pass ? "PASS" : "FAIL"}\n`,
    );
    // The 99th percentile of fewer than ~1,000 beats is one of its few largest: one loaded moment.
    if (base.beats < 1_000)
      process.stdout.write(
        `    (N=${BASELINE_N}'s p99 is from ${base.beats} beats, so it is about their largest: one loaded moment ` +
          `sets it; --baseline-duration ${Math.ceil((1_000 * opt.intervalMs) / BASELINE_N / 60_000)}m gives ~1,000)\n`,
      );
  } else {
    process.stdout.write(`  heartbeat p99 ratio: only N=${BASELINE_N} was run\n`);
  }
  const big = results.find((r) => r.n === RSS_GOAL_N);
  if (big) {
    const pass = big.rssMax < RSS_GOAL_MB;
    ok &&= pass;
    process.stdout.write(
      `  gateway RSS under ${RSS_GOAL_MB} MB at N=${RSS_GOAL_N}: max ${big.rssMax.toFixed(0)} MB → ${pass ? "PASS" : "FAIL"}\n`,
    );
  } else {
    process.stdout.write(`  gateway RSS at N=${RSS_GOAL_N}: not run (add 10000 to --sizes)\n`);
  }
  const notReady = results.filter((r) => r.ready !== r.n);
  ok &&= notReady.length === 0;
  process.stdout.write(
    `  all N machines READY at the end: ${
      notReady.length === 0 ? "PASS" : `FAIL (${notReady.map((r) => `N=${r.n}: ${r.ready}`).join(", ")})`
    }\n`,
  );
  return ok;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opt = options();
  keepLogsIn = opt.gatewayLogDir;
  const maxN = Math.max(...opt.sizes) * opt.replicas;
  // A gateway (which inherits the limit) holds its N sockets; each agent worker its share of maxN.
  const perProc = Math.ceil(maxN / procsFor(maxN, opt));
  const fdNote = ensureFdLimit(Math.max(Math.max(...opt.sizes), perProc) + 2_048);
  // Bounded: connect budget, warm-up, window, grace and start/stop per size, plus a margin.
  const budgetMs = opt.sizes.reduce(
    (acc, n) =>
      acc + Math.max(60_000, n * opt.replicas * 20) + 10_000 + opt.intervalMs * 2 + windowOf(opt, n) + 60_000,
    60_000,
  );
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: gave up after ${(budgetMs / 1000).toFixed(0)} s; cleaning up\n`);
    stopAllNow();
    process.exit(2);
  }, budgetMs);
  watchdog.unref();

  process.stdout.write(
    `Heartbeat bench: sizes ${opt.sizes.join(", ")}; ${opt.durationMs / 1000} s steady state each` +
      `${opt.baselineMs !== opt.durationMs ? ` (N=${BASELINE_N}: ${opt.baselineMs / 1000} s)` : ""}; ` +
      `heartbeat every ${opt.intervalMs / 1000} s; ${opt.concurrency} joins at a time\n` +
      `node ${process.version}, ${os.cpus().length} CPUs, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, ${fdNote}\n` +
      "gateway and bench run on the same machine: the bench's own CPU shows in the figures.\n" +
      (opt.gatewayBin !== GATEWAY_BIN ? `gateway: ${opt.gatewayBin}\n` : "") +
      (opt.gatewayNodeArgs.length > 0 ? `gateway node flags: ${opt.gatewayNodeArgs.join(" ")}\n` : "") +
      (opt.listPoll ? "" : "GET /api/v1/machines is not polled (--no-list-poll)\n"),
  );
  if (opt.replicas > 1) {
    const all: ReplicaResult[] = [];
    for (const n of opt.sizes) {
      process.stdout.write(`\n== N=${n} on each of ${opt.replicas} replicas ==\n`);
      all.push(...(await runReplicas(n, opt)));
    }
    const ok = printReplicas(all, opt.replicas);
    clearTimeout(watchdog);
    process.exitCode = ok ? 0 : 1;
    return;
  }
  const results: Result[] = [];
  for (const n of opt.sizes) {
    process.stdout.write(`\n== N=${n} ==\n`);
    const r = await runSize(n, opt);
    printResult(r, opt);
    results.push(r);
  }
  const ok = printSummary(results, opt);
  clearTimeout(watchdog);
  process.exitCode = ok ? 0 : 1;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    stopAllNow();
    process.exit(130);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  stopAllNow();
  process.exit(2);
});
