/**
 * Gateway overhead bench: the same OpenAI-compatible chat workload sent, interleaved, to (a) a canned
 * upstream directly, (b) nginx as a plain reverse proxy in front of it, (c) the LiteLLM proxy in
 * front of it (when installed), (d) Beta9: a real b9gateway and a real b9agent serving the canned
 * upstream as a llama.cpp engine (a `llama-server` wrapper on the agent's PATH), and (e) the same two
 * hops in bare Node, its floor (node-floor.ts). Each round measures
 * every path; the figures printed are medians over rounds, and what a path adds is taken against
 * direct in the same round. See README.md beside this file.
 *
 *   npx node bench/gateway/run.ts [--rounds 5] [--chunks 32] [--gap-ms 5] [--litellm PATH]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { Pool } from "undici";
import {
  benchDir,
  cpuMs,
  HOST,
  machineLine,
  mean,
  median,
  ms,
  out,
  percentile,
  processTree,
  ratio,
  runMain,
  signed,
  spawnChild,
  startBeta9,
  stopChild,
  table,
  watchdog,
} from "./common.ts";
import { LITELLM, startLiteLLM } from "./litellm.ts";
import { startNginx } from "./nginx.ts";
import { startNodeFloor } from "./node-floor.ts";

const MODEL = "canned";
const UPSTREAM = path.join(import.meta.dirname, "canned-upstream.ts");
const CONCURRENCY = [1, 64];
/** Issue 18's goals: per concurrency, added p50 and TTFT p50; at 64, gateway + agent CPU too. */
const GOAL = {
  addedP50Ms: { 1: 0.5, 64: 5 },
  addedTtftMs: { 1: 1, 64: 3 },
  addedP99Ms: 2,
  addedGapMs: 0.1,
  cpuPerReqUs: 200,
  cpuPerStreamUs: 700,
} as const;
const WATCHDOG_MS = 15 * 60_000;
/** Requests per client per round: non-streaming, and streams. */
const PER_CLIENT = { 1: { whole: 100, streams: 10 }, 64: { whole: 10, streams: 2 } } as const;

interface Options {
  rounds: number;
  chunks: number;
  gapMs: number;
  litellm: string;
  warmup: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "5" },
      chunks: { type: "string", default: "32" },
      "gap-ms": { type: "string", default: "5" },
      litellm: { type: "string", default: LITELLM },
      warmup: { type: "string", default: "20" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out(
      "usage: npx node bench/gateway/run.ts [--rounds 5] [--chunks 32] [--gap-ms 5] [--litellm PATH] [--warmup 20]\n",
    );
    process.exit(0);
  }
  const o = {
    rounds: Number(values.rounds),
    chunks: Number(values.chunks),
    gapMs: Number(values["gap-ms"]),
    litellm: values.litellm,
    warmup: Number(values.warmup),
  };
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 100) throw new Error("--rounds: 1 to 100");
  if (!Number.isInteger(o.chunks) || o.chunks < 2 || o.chunks > 1000) throw new Error("--chunks: 2 to 1000");
  if (!(o.gapMs >= 0 && o.gapMs <= 1000)) throw new Error("--gap-ms: 0 to 1000");
  if (!Number.isInteger(o.warmup) || o.warmup < 1 || o.warmup > 1000) throw new Error("--warmup: 1 to 1000");
  return o;
}

// ---------------------------------------------------------------------------------------------
// The paths

interface Target {
  name: string;
  pool: Pool;
  headers: Record<string, string>;
  /** The processes doing this path's proxying (none for direct): their CPU is charged to it. */
  proxyPids: number[];
}

const upstreamArgs = (o: Options) => ["--chunks", String(o.chunks), "--gap-ms", String(o.gapMs)];

async function startUpstream(o: Options) {
  const proc = spawnChild(process.execPath, [
    UPSTREAM,
    "--host",
    HOST,
    "--port",
    "0",
    "--alias",
    MODEL,
    ...upstreamArgs(o),
  ]);
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (b: Buffer) => {
      buf += b.toString();
      const m = /listening (\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.once("exit", (code) => reject(new Error(`canned upstream exited (${code})`)));
  });
  return { proc, port };
}

/** Beta9 serving the canned upstream: the agent starts it as its llama.cpp engine. */
async function startBeta9Path(o: Options) {
  const bin = benchDir("b9-bench-bin-");
  const shim = path.join(bin, "llama-server");
  fs.writeFileSync(
    shim,
    `#!/bin/sh\nexec "${process.execPath}" "${UPSTREAM}" ${upstreamArgs(o).join(" ")} "$@"\n`,
  );
  fs.chmodSync(shim, 0o755);
  const b9 = await startBeta9({ env: { PATH: `${bin}:${process.env.PATH}`, BETA9_LOG_LEVEL: "info" } });
  await b9.control("POST", "/inference/pull", { model: MODEL, source: testModelPath() });
  await b9.control("POST", "/inference/start", { model: MODEL, engine: "llamacpp" });
  await waitFor(
    async () => {
      const r = await b9.gw.api<{ data: { id: string }[] }>("GET", "/v1/models", undefined, b9.key);
      return r.status === 200 && r.body.data.some((m) => m.id === MODEL);
    },
    { timeoutMs: 30_000, what: "the gateway to list the model" },
  );
  return b9;
}

// ---------------------------------------------------------------------------------------------
// Load

/** One path's figures in one round at one concurrency. */
interface RoundFigures {
  latency: number[];
  ttft: number[];
  gaps: number[];
  errors: number;
  /** Proxy CPU (ms) over the non-streaming burst and over the streaming burst. */
  cpuWholeMs: number;
  cpuStreamsMs: number;
  /** The same, of the path's first process alone (beta9: the gateway; the agent is the rest). */
  firstWholeMs: number;
  firstStreamsMs: number;
  wholeCount: number;
  streamCount: number;
}

const bodyOf = (stream: boolean) =>
  JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Say hello." }], stream });

async function oneWhole(t: Target, f: RoundFigures | null): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await t.pool.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: t.headers,
      body: bodyOf(false),
    });
    const text = await res.body.text();
    const dt = performance.now() - t0;
    if (res.statusCode !== 200 || !text.includes("A canned answer.")) throw new Error(`${res.statusCode}`);
    f?.latency.push(dt);
  } catch {
    if (f) f.errors++;
  }
}

/** A content event: LiteLLM sends the last chunk's finish_reason as an event of its own, without one. */
const HAS_CONTENT = /"content":"[^"]/;

async function oneStream(t: Target, f: RoundFigures | null, chunks: number): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await t.pool.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: t.headers,
      body: bodyOf(true),
    });
    if (res.statusCode !== 200) throw new Error(`${res.statusCode}`);
    const times: number[] = [];
    let buf = "";
    let done = false;
    for await (const b of res.body) {
      const now = performance.now();
      buf += (b as Buffer).toString("utf8");
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev.startsWith("data: [DONE]")) done = true;
        else if (ev.startsWith("data: ") && HAS_CONTENT.test(ev)) times.push(now);
      }
    }
    if (!done || times.length !== chunks) throw new Error(`got ${times.length} chunks, done=${done}`);
    if (f) {
      f.ttft.push(times[0]! - t0);
      for (let k = 1; k < times.length; k++) f.gaps.push(times[k]! - times[k - 1]!);
    }
  } catch {
    if (f) f.errors++;
  }
}

async function burst(clients: number, perClient: number, fn: () => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < perClient; i++) await fn();
    }),
  );
}

const cpuOf = (pids: number[]) => pids.reduce((s, p) => s + (cpuMs(p) || 0), 0);

/** The path's proxy CPU (ms) over `fn`, all processes and the first one alone. */
async function measured(t: Target, fn: () => Promise<void>): Promise<{ all: number; first: number }> {
  const first = t.proxyPids.slice(0, 1);
  const c0 = cpuOf(t.proxyPids);
  const f0 = cpuOf(first);
  await fn();
  return { all: cpuOf(t.proxyPids) - c0, first: cpuOf(first) - f0 };
}

// ---------------------------------------------------------------------------------------------
// Figures

interface Summary {
  p50: number;
  p99: number;
  ttft50: number;
  ttft99: number;
  gap: number;
  gap99: number;
  cpuPerReqUs: number;
  cpuPerStreamUs: number;
  firstPerReqUs: number;
  firstPerStreamUs: number;
  errors: number;
}

function summarize(f: RoundFigures): Summary {
  return {
    p50: percentile(f.latency, 50),
    p99: percentile(f.latency, 99),
    ttft50: percentile(f.ttft, 50),
    ttft99: percentile(f.ttft, 99),
    gap: mean(f.gaps),
    gap99: percentile(f.gaps, 99),
    cpuPerReqUs: f.wholeCount ? (1000 * f.cpuWholeMs) / f.wholeCount : Number.NaN,
    cpuPerStreamUs: f.streamCount ? (1000 * f.cpuStreamsMs) / f.streamCount : Number.NaN,
    firstPerReqUs: f.wholeCount ? (1000 * f.firstWholeMs) / f.wholeCount : Number.NaN,
    firstPerStreamUs: f.streamCount ? (1000 * f.firstStreamsMs) / f.streamCount : Number.NaN,
    errors: f.errors,
  };
}

/** Median over rounds of one figure, and of its difference to direct's in the same round. */
function medianOf(rounds: Summary[], key: keyof Summary): number {
  return median(rounds.map((s) => s[key]));
}
function addedOf(rounds: Summary[], direct: Summary[], key: keyof Summary): number {
  return median(rounds.map((s, i) => s[key] - direct[i]![key]));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = options();
  watchdog(WATCHDOG_MS);
  out(`# Gateway bench: ${machineLine()}\n`);
  out(
    `canned upstream: ${o.chunks} SSE chunks, ${o.gapMs} ms apart; warm-up ×${o.warmup}; ${o.rounds} interleaved rounds\n\n`,
  );

  const upstream = await startUpstream(o);
  const nginx = await startNginx(upstream.port);
  const floor = await startNodeFloor(upstream.port);
  const litellm = await startLiteLLM(o.litellm, MODEL, upstream.port);
  const b9 = await startBeta9Path(o);
  const mkPool = (port: number) =>
    new Pool(`http://${HOST}:${port}`, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000 });
  const json = { "content-type": "application/json" };
  const targets: Target[] = [{ name: "direct", pool: mkPool(upstream.port), headers: json, proxyPids: [] }];
  if (typeof nginx === "string") out(`nginx: skipped (${nginx})\n`);
  else
    targets.push({
      name: "nginx",
      pool: mkPool(nginx.port),
      headers: json,
      proxyPids: processTree(nginx.proc.pid!),
    });
  if (typeof floor === "string") out(`node-floor: skipped (${floor})\n`);
  else
    targets.push({
      name: "node-floor",
      pool: mkPool(floor.port),
      headers: json,
      proxyPids: floor.procs.map((p) => p.pid!),
    });
  if (typeof litellm === "string") out(`litellm: skipped (${litellm})\n`);
  else {
    out(`litellm: ${litellm.version}, 1 worker\n`);
    targets.push({
      name: "litellm",
      pool: mkPool(litellm.port),
      headers: { ...json, authorization: `Bearer ${litellm.key}` },
      proxyPids: processTree(litellm.proc.pid!),
    });
  }
  targets.push({
    name: "beta9",
    pool: mkPool(b9.gw.port),
    headers: { ...json, authorization: `Bearer ${b9.key}` },
    proxyPids: [b9.gw.proc.child.pid!, b9.agent.proc.child.pid!],
  });

  try {
    // Warm-up: every path, both modes, at full concurrency, until the proxies' compilers are done
    // (fills the keep-alive pools; a Node process spends a tenth of its CPU compiling for the first
    // thousand streams or so): 64 clients × 5 requests and 1 stream, --warmup times.
    for (const t of targets) {
      await burst(64, 5 * o.warmup, () => oneWhole(t, null));
      await burst(64, o.warmup, () => oneStream(t, null, o.chunks));
    }

    // figures[concurrency][path][round]
    const figures = new Map<number, Map<string, Summary[]>>();
    const loads: number[] = [];
    const t0 = performance.now();
    for (let r = 0; r < o.rounds; r++) {
      for (const c of CONCURRENCY) {
        const per = PER_CLIENT[c as 1 | 64];
        // Rotate the order each round so no path always goes first or last.
        const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
        const round = new Map<string, RoundFigures>();
        for (const t of order) {
          const f: RoundFigures = {
            latency: [],
            ttft: [],
            gaps: [],
            errors: 0,
            cpuWholeMs: 0,
            cpuStreamsMs: 0,
            firstWholeMs: 0,
            firstStreamsMs: 0,
            wholeCount: c * per.whole,
            streamCount: c * per.streams,
          };
          round.set(t.name, f);
          const cpu = await measured(t, () => burst(c, per.whole, () => oneWhole(t, f)));
          f.cpuWholeMs = cpu.all;
          f.firstWholeMs = cpu.first;
        }
        for (const t of order) {
          const f = round.get(t.name)!;
          const cpu = await measured(t, () => burst(c, per.streams, () => oneStream(t, f, o.chunks)));
          f.cpuStreamsMs = cpu.all;
          f.firstStreamsMs = cpu.first;
        }
        const byPath = figures.get(c) ?? new Map<string, Summary[]>();
        figures.set(c, byPath);
        for (const [name, f] of round) byPath.set(name, [...(byPath.get(name) ?? []), summarize(f)]);
      }
      loads.push(Number(fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]));
    }
    out(
      `measured in ${((performance.now() - t0) / 1000).toFixed(1)} s; 1-min load average after each round: ${loads.join(", ")}\n\n`,
    );

    const verdicts: string[] = [];
    const pf = (ok: boolean) => (ok ? "PASS" : "FAIL");
    for (const c of CONCURRENCY) {
      const byPath = figures.get(c)!;
      const direct = byPath.get("direct")!;
      const per = PER_CLIENT[c as 1 | 64];
      out(`## ${c} concurrent client${c === 1 ? "" : "s"}\n\n`);
      out(
        `per round and path: ${c * per.whole} requests, ${c * per.streams} streams. Medians over ${o.rounds} rounds.\n` +
          "proxy CPU: the CPU time of the path's proxy processes (beta9: gateway + agent) per request or stream.\n\n",
      );
      out(
        table(
          [
            "path",
            "p50 ms",
            "p99 ms",
            "TTFT p50",
            "TTFT p99",
            "gap mean",
            "gap p99",
            "proxy CPU/req µs",
            "proxy CPU/stream µs",
            "errors",
          ],
          targets.map((t) => {
            const s = byPath.get(t.name)!;
            const cpu = (k: keyof Summary) => (t.proxyPids.length ? medianOf(s, k).toFixed(0) : "-");
            return [
              t.name,
              ms(medianOf(s, "p50")),
              ms(medianOf(s, "p99")),
              ms(medianOf(s, "ttft50")),
              ms(medianOf(s, "ttft99")),
              ms(medianOf(s, "gap")),
              ms(medianOf(s, "gap99")),
              cpu("cpuPerReqUs"),
              cpu("cpuPerStreamUs"),
              String(s.reduce((n, x) => n + x.errors, 0)),
            ];
          }),
        ),
      );
      const b9 = byPath.get("beta9")!;
      const split = (k: "PerReqUs" | "PerStreamUs") => {
        const gw = medianOf(b9, `first${k}`);
        return `gateway ${gw.toFixed(0)} + agent ${(medianOf(b9, `cpu${k}`) - gw).toFixed(0)} µs`;
      };
      out(`\nbeta9's CPU per request: ${split("PerReqUs")}; per stream: ${split("PerStreamUs")} (medians)\n`);
      const floor = byPath.get("node-floor");
      if (floor) {
        // Round by round, each against the floor measured beside it, then the median.
        const times = (k: keyof Summary) => median(b9.map((s, i) => s[k] / floor[i]![k]));
        const hops = (k: "PerReqUs" | "PerStreamUs") => {
          const front = medianOf(floor, `first${k}`);
          return `front ${front.toFixed(0)} + back ${(medianOf(floor, `cpu${k}`) - front).toFixed(0)} µs`;
        };
        out(
          `bare Node floor (the same two hops, nothing else): per request ${hops("PerReqUs")}; per stream ${hops("PerStreamUs")}; ` +
            `beta9 is ${times("cpuPerReqUs").toFixed(2)}× it per request, ${times("cpuPerStreamUs").toFixed(2)}× per stream\n`,
        );
      }
      out("\nadded vs direct, ms (median over rounds of each round's difference; ratio of the medians):\n\n");
      const added = new Map<string, Record<string, number>>();
      out(
        table(
          [
            "path",
            "p50 added",
            "p99 added",
            "TTFT p50 added",
            "TTFT p99 added",
            "gap mean added",
            "gap p99 added",
          ],
          targets
            .filter((t) => t.name !== "direct")
            .map((t) => {
              const s = byPath.get(t.name)!;
              const a = {
                p50: addedOf(s, direct, "p50"),
                p99: addedOf(s, direct, "p99"),
                ttft50: addedOf(s, direct, "ttft50"),
                ttft99: addedOf(s, direct, "ttft99"),
                gap: addedOf(s, direct, "gap"),
                gap99: addedOf(s, direct, "gap99"),
                cpu: medianOf(s, "cpuPerReqUs"),
              };
              added.set(t.name, a);
              const cell = (k: keyof typeof a & keyof Summary) =>
                `${signed(a[k])} (${ratio(medianOf(s, k), medianOf(direct, k))})`;
              return [
                t.name,
                cell("p50"),
                cell("p99"),
                cell("ttft50"),
                cell("ttft99"),
                cell("gap"),
                cell("gap99"),
              ];
            }),
        ),
      );
      out("\n");
      const a = added.get("beta9")!;
      const p50Goal = GOAL.addedP50Ms[c as 1 | 64];
      const ttftGoal = GOAL.addedTtftMs[c as 1 | 64];
      verdicts.push(
        `${pf(a.p50! <= p50Goal)}  beta9: added p50 ≤ ${p50Goal} ms at ${c} concurrent (non-streaming): ${signed(a.p50!)} ms`,
      );
      if (c === 64) {
        const s = byPath.get("beta9")!;
        const perReq = medianOf(s, "cpuPerReqUs");
        const perStream = medianOf(s, "cpuPerStreamUs");
        verdicts.push(
          `${pf(a.p99! <= GOAL.addedP99Ms)}  beta9: added p99 ≤ ${GOAL.addedP99Ms} ms at 64 concurrent (non-streaming): ${signed(a.p99!)} ms`,
          `${pf(perReq <= GOAL.cpuPerReqUs)}  beta9: gateway + agent CPU per request ≤ ${GOAL.cpuPerReqUs} µs at 64 concurrent: ${perReq.toFixed(0)} µs`,
          `${pf(perStream <= GOAL.cpuPerStreamUs)}  beta9: gateway + agent CPU per stream of ${o.chunks} chunks ≤ ${GOAL.cpuPerStreamUs} µs at 64 concurrent: ${perStream.toFixed(0)} µs`,
        );
      }
      verdicts.push(
        `${pf(a.ttft50! <= ttftGoal)}  beta9: added TTFT p50 ≤ ${ttftGoal} ms at ${c} concurrent: ${signed(a.ttft50!)} ms`,
        `${pf(a.gap! <= GOAL.addedGapMs)}  beta9: no added gap between chunks (mean ≤ ${GOAL.addedGapMs} ms over direct) at ${c} concurrent: ${signed(a.gap!)} ms`,
      );
      const l = added.get("litellm");
      if (l) {
        verdicts.push(
          `${pf(a.p50! < l.p50!)}  beta9 under LiteLLM's added p50 at ${c} concurrent: ${signed(a.p50!)} vs ${signed(l.p50!)} ms`,
          `${pf(a.ttft50! < l.ttft50!)}  beta9 under LiteLLM's added TTFT p50 at ${c} concurrent: ${signed(a.ttft50!)} vs ${signed(l.ttft50!)} ms`,
          `${pf(a.cpu! < l.cpu!)}  beta9 (gateway + agent) under LiteLLM's proxy CPU per request at ${c} concurrent: ${a.cpu!.toFixed(0)} vs ${l.cpu!.toFixed(0)} µs`,
        );
      }
      for (const t of targets) {
        const errs = byPath.get(t.name)!.reduce((n, x) => n + x.errors, 0);
        if (errs > 0) verdicts.push(`FAIL  ${t.name}: ${errs} failed requests at ${c} concurrent`);
      }
    }
    out("## Goals\n\n");
    for (const v of verdicts) out(`${v}\n`);
    out(
      "\nNotes: beta9 is two hops (client → b9gateway → agent channel (HTTP/2) → b9agent → upstream), with\n" +
        "auth, routing and metering; nginx (1 worker) and LiteLLM (1 worker) are one hop. All processes share\n" +
        `this ${os.cpus().length}-CPU machine, so at 64 clients every proxy competes with the client and the\n` +
        "upstream for CPU, and its added latency is mostly queueing for a CPU: proxy CPU per request is the\n" +
        "figure that does not depend on how busy the machine was.\n",
    );
  } finally {
    for (const t of targets) await t.pool.close();
    await b9.stop();
    if (typeof nginx !== "string") await stopChild(nginx.proc);
    if (typeof floor !== "string") for (const p of floor.procs) await stopChild(p);
    if (typeof litellm !== "string") await stopChild(litellm.proc);
    await stopChild(upstream.proc);
  }
}

runMain(main);
