/**
 * Gateway overhead bench: the same OpenAI-compatible chat workload sent, interleaved, to (a) a canned
 * upstream directly, (b) nginx as a plain reverse proxy in front of it, and (c) Beta9: a real
 * b9gateway and a real b9agent serving the canned upstream as a llama.cpp engine (a `llama-server`
 * wrapper on the agent's PATH). Prints latency per path, what each proxy adds over direct, and goals.
 * See README.md beside this file.
 *
 *   npx node bench/gateway/run.ts [--rounds 6] [--chunks 32] [--gap-ms 5]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { Pool } from "undici";
import YAML from "yaml";

const HOST = "127.0.0.1";
const MODEL = "canned";
const UPSTREAM = path.join(import.meta.dirname, "canned-upstream.ts");
const NGINX = "/usr/sbin/nginx";
const CONCURRENCY = [1, 64];
const GOAL = { addedP50Ms: 0.5, addedP99Ms: 2, addedTtftMs: 1, addedGapMs: 0.1 };
const WATCHDOG_MS = 10 * 60_000;

interface Options {
  rounds: number;
  chunks: number;
  gapMs: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "6" },
      chunks: { type: "string", default: "32" },
      "gap-ms": { type: "string", default: "5" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write("usage: npx node bench/gateway/run.ts [--rounds 6] [--chunks 32] [--gap-ms 5]\n");
    process.exit(0);
  }
  const o = { rounds: Number(values.rounds), chunks: Number(values.chunks), gapMs: Number(values["gap-ms"]) };
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 100) throw new Error("--rounds: 1 to 100");
  if (!Number.isInteger(o.chunks) || o.chunks < 2 || o.chunks > 1000) throw new Error("--chunks: 2 to 1000");
  if (!(o.gapMs >= 0 && o.gapMs <= 1000)) throw new Error("--gap-ms: 0 to 1000");
  return o;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const sortedOf = (xs: number[]) => Float64Array.from(xs).sort();
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
const ms = (x: number) =>
  Number.isFinite(x)
    ? Math.abs(x) >= 100
      ? x.toFixed(0)
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : x.toFixed(2)
    : "-";
const signed = (x: number) => (Number.isFinite(x) ? (x >= 0 ? `+${ms(x)}` : ms(x)) : "-");
const ratio = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "-";

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return `${[line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n")}\n`;
}

const out = (s: string) => process.stdout.write(s);

// ---------------------------------------------------------------------------------------------
// Processes this bench starts itself (the gateway and agent are test-utils' Procs)

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

function spawnChild(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGTERM");
  const t = setTimeout(() => c.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(t);
}

async function startUpstream(o: Options): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawnChild(process.execPath, [
    UPSTREAM,
    "--host",
    HOST,
    "--port",
    "0",
    "--alias",
    MODEL,
    "--chunks",
    String(o.chunks),
    "--gap-ms",
    String(o.gapMs),
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

async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, HOST, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function startNginx(upstreamPort: number): Promise<{ proc: ChildProcess; port: number } | string> {
  if (!fs.existsSync(NGINX)) return `${NGINX} not found`;
  const dir = tempDir("b9-bench-nginx-");
  tempDirs.push(dir);
  const port = await freePort();
  const conf = path.join(dir, "nginx.conf");
  const t = (n: string) => path.join(dir, n);
  fs.writeFileSync(
    conf,
    `worker_processes 1;
error_log ${t("error.log")} warn;
pid ${t("nginx.pid")};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${t("cb")}; proxy_temp_path ${t("px")}; fastcgi_temp_path ${t("fc")};
  uwsgi_temp_path ${t("uw")}; scgi_temp_path ${t("sc")};
  keepalive_requests 1000000;
  upstream canned { server ${HOST}:${upstreamPort}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen ${HOST}:${port};
    location / {
      proxy_pass http://canned;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`,
  );
  const proc = spawnChild(NGINX, ["-p", dir, "-c", conf, "-g", "daemon off;"]);
  let stderr = "";
  proc.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`nginx exited (${proc.exitCode}): ${stderr}`);
        try {
          return (await fetch(`http://${HOST}:${port}/health`)).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, what: "nginx to answer" },
    );
  } catch (e) {
    await stopChild(proc);
    return `nginx did not start: ${(e as Error).message}`;
  }
  return { proc, port };
}

interface Beta9 {
  gw: GatewayProc;
  agent: AgentProc;
  key: string;
  enginePids: () => number[];
}

async function startBeta9(o: Options): Promise<Beta9> {
  const bin = tempDir("b9-bench-bin-");
  tempDirs.push(bin);
  const shim = path.join(bin, "llama-server");
  fs.writeFileSync(
    shim,
    `#!/bin/sh\nexec "${process.execPath}" "${UPSTREAM}" --chunks ${o.chunks} --gap-ms ${o.gapMs} "$@"\n`,
  );
  fs.chmodSync(shim, 0o755);
  const gw = await startGateway();
  tempDirs.push(gw.dataDir);
  const cfgPath = await initAgent(gw, { name: "bench-box" });
  tempDirs.push(path.dirname(cfgPath));
  const cfg = YAML.parse(fs.readFileSync(cfgPath, "utf8"));
  cfg.models = { allowed_dirs: [path.dirname(testModelPath())] };
  fs.writeFileSync(cfgPath, YAML.stringify(cfg), { mode: 0o600 });
  const agent = await startAgent(cfgPath, { env: { PATH: `${bin}:${process.env.PATH}` } });
  const control = async (p: string, body: unknown) => {
    const res = await fetch(agent.controlUrl + p, {
      method: "POST",
      headers: { authorization: `Bearer ${cfg.machine.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`POST ${p}: ${res.status} ${text}`);
  };
  await control("/inference/pull", { model: MODEL, source: testModelPath() });
  await control("/inference/start", { model: MODEL, engine: "llamacpp" });
  const created = await gw.api<{ key: string }>("POST", "/api/v1/keys", {
    name: "bench",
    scopes: ["inference"],
    rpm_limit: null,
    tpm_limit: null,
  });
  if (created.status !== 201) throw new Error(`POST /api/v1/keys: ${created.status}`);
  await waitFor(
    async () => {
      const r = await gw.api<{ data: { id: string }[] }>("GET", "/v1/models", undefined, created.body.key);
      return r.status === 200 && r.body.data.some((m) => m.id === MODEL);
    },
    { timeoutMs: 30_000, what: "the gateway to list the model" },
  );
  const agentPid = agent.proc.child.pid!;
  const enginePids = () => {
    const ps = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" });
    return ps
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, ppid, ...a]) => Number(ppid) === agentPid && a.join(" ").includes("canned-upstream.ts"))
      .map(([pid]) => Number(pid));
  };
  return { gw, agent, key: created.body.key, enginePids };
}

// ---------------------------------------------------------------------------------------------
// Load

interface Target {
  name: string;
  pool: Pool;
  headers: Record<string, string>;
}

interface Samples {
  latency: number[];
  ttft: number[];
  gaps: number[];
  errors: number;
}
const emptySamples = (): Samples => ({ latency: [], ttft: [], gaps: [], errors: 0 });

function bodyOf(stream: boolean): string {
  return JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Say hello." }], stream });
}

async function oneWhole(t: Target, s: Samples | null): Promise<void> {
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
    if (res.statusCode !== 200 || !text.includes("chat.completion")) throw new Error(`${res.statusCode}`);
    s?.latency.push(dt);
  } catch {
    if (s) s.errors++;
  }
}

async function oneStream(t: Target, s: Samples | null, chunks: number): Promise<void> {
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
      let i = buf.indexOf("\n\n");
      while (i >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev.startsWith("data: [DONE]")) done = true;
        else if (ev.startsWith("data: ")) times.push(now);
        i = buf.indexOf("\n\n");
      }
    }
    if (!done || times.length !== chunks) throw new Error(`got ${times.length} chunks, done=${done}`);
    if (s) {
      s.ttft.push(times[0]! - t0);
      for (let k = 1; k < times.length; k++) s.gaps.push(times[k]! - times[k - 1]!);
    }
  } catch {
    if (s) s.errors++;
  }
}

async function burst(clients: number, perClient: number, fn: () => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < perClient; i++) await fn();
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = options();
  const watchdog = setTimeout(() => {
    process.stderr.write(`watchdog: over ${WATCHDOG_MS / 60_000} min, stopping\n`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();
  process.on("SIGINT", () => process.exit(130));

  out(`# Gateway bench: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), node ${process.version}\n`);
  out(`canned upstream: ${o.chunks} SSE chunks, ${o.gapMs} ms apart; ${o.rounds} interleaved rounds\n\n`);

  const upstream = await startUpstream(o);
  const nginx = await startNginx(upstream.port);
  const b9 = await startBeta9(o);
  const mkPool = (port: number) =>
    new Pool(`http://${HOST}:${port}`, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000 });
  const json = { "content-type": "application/json" };
  const targets: Target[] = [{ name: "direct", pool: mkPool(upstream.port), headers: json }];
  if (typeof nginx === "string") out(`nginx: skipped (${nginx})\n`);
  else targets.push({ name: "nginx", pool: mkPool(nginx.port), headers: json });
  targets.push({
    name: "beta9",
    pool: mkPool(b9.gw.port),
    headers: { ...json, authorization: `Bearer ${b9.key}` },
  });

  try {
    // Warm-up: every path, both modes, at full concurrency (fills the keep-alive pools).
    for (const t of targets) {
      await burst(64, 5, () => oneWhole(t, null));
      await burst(64, 1, () => oneStream(t, null, o.chunks));
    }

    const whole = new Map<string, Samples>();
    const stream = new Map<string, Samples>();
    const key = (c: number, name: string) => `${c}/${name}`;
    for (const c of CONCURRENCY)
      for (const t of targets) {
        whole.set(key(c, t.name), emptySamples());
        stream.set(key(c, t.name), emptySamples());
      }
    const wholePerClient = (c: number) => (c === 1 ? 100 : 10);
    const streamPerClient = (c: number) => (c === 1 ? 5 : 2);
    const t0 = performance.now();
    for (let r = 0; r < o.rounds; r++) {
      for (const c of CONCURRENCY) {
        // Rotate the order each round so no path always goes first or last.
        const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
        for (const t of order) {
          const s = whole.get(key(c, t.name))!;
          await burst(c, wholePerClient(c), () => oneWhole(t, s));
        }
        for (const t of order) {
          const s = stream.get(key(c, t.name))!;
          await burst(c, streamPerClient(c), () => oneStream(t, s, o.chunks));
        }
      }
    }
    out(`measured in ${((performance.now() - t0) / 1000).toFixed(1)} s\n\n`);

    const direct = (c: number) => ({ w: whole.get(key(c, "direct"))!, s: stream.get(key(c, "direct"))! });
    const verdicts: string[] = [];
    for (const c of CONCURRENCY) {
      out(`## ${c} concurrent client${c === 1 ? "" : "s"}\n\n`);
      const rows: string[][] = [];
      for (const t of targets) {
        const w = whole.get(key(c, t.name))!;
        const s = stream.get(key(c, t.name))!;
        const L = sortedOf(w.latency);
        const F = sortedOf(s.ttft);
        const G = sortedOf(s.gaps);
        rows.push([
          t.name,
          String(w.latency.length),
          ms(percentile(L, 50)),
          ms(percentile(L, 99)),
          String(s.ttft.length),
          ms(percentile(F, 50)),
          ms(percentile(F, 99)),
          ms(mean(s.gaps)),
          ms(percentile(G, 99)),
          String(w.errors + s.errors),
        ]);
      }
      out(
        table(
          [
            "path",
            "n",
            "p50 ms",
            "p99 ms",
            "streams",
            "TTFT p50",
            "TTFT p99",
            "gap mean",
            "gap p99",
            "errors",
          ],
          rows,
        ),
      );
      out("\nadded vs direct (delta, ratio):\n\n");
      const d = direct(c);
      const dL = sortedOf(d.w.latency);
      const dF = sortedOf(d.s.ttft);
      const dG = sortedOf(d.s.gaps);
      const added: string[][] = [];
      for (const t of targets.filter((x) => x.name !== "direct")) {
        const w = whole.get(key(c, t.name))!;
        const s = stream.get(key(c, t.name))!;
        const L = sortedOf(w.latency);
        const F = sortedOf(s.ttft);
        const G = sortedOf(s.gaps);
        const a = {
          p50: percentile(L, 50) - percentile(dL, 50),
          p99: percentile(L, 99) - percentile(dL, 99),
          ttft50: percentile(F, 50) - percentile(dF, 50),
          ttft99: percentile(F, 99) - percentile(dF, 99),
          gap: mean(s.gaps) - mean(d.s.gaps),
          gap99: percentile(G, 99) - percentile(dG, 99),
        };
        added.push([
          t.name,
          `${signed(a.p50)} (${ratio(percentile(L, 50), percentile(dL, 50))})`,
          `${signed(a.p99)} (${ratio(percentile(L, 99), percentile(dL, 99))})`,
          `${signed(a.ttft50)} (${ratio(percentile(F, 50), percentile(dF, 50))})`,
          `${signed(a.ttft99)} (${ratio(percentile(F, 99), percentile(dF, 99))})`,
          `${signed(a.gap)} (${ratio(mean(s.gaps), mean(d.s.gaps))})`,
          `${signed(a.gap99)} (${ratio(percentile(G, 99), percentile(dG, 99))})`,
        ]);
        const pf = (ok: boolean) => (ok ? "PASS" : "FAIL");
        const errs = w.errors + s.errors;
        if (c === 64) {
          verdicts.push(
            `${pf(a.p50 <= GOAL.addedP50Ms)}  ${t.name}: added p50 ≤ ${GOAL.addedP50Ms} ms at 64 concurrent (non-streaming): ${signed(a.p50)} ms`,
            `${pf(a.p99 <= GOAL.addedP99Ms)}  ${t.name}: added p99 ≤ ${GOAL.addedP99Ms} ms at 64 concurrent (non-streaming): ${signed(a.p99)} ms`,
          );
        }
        verdicts.push(
          `${pf(a.ttft50 <= GOAL.addedTtftMs)}  ${t.name}: added TTFT p50 ≤ ${GOAL.addedTtftMs} ms at ${c} concurrent: ${signed(a.ttft50)} ms`,
          `${pf(a.gap <= GOAL.addedGapMs)}  ${t.name}: no added gap between chunks (mean delta ≤ ${GOAL.addedGapMs} ms) at ${c} concurrent: ${signed(a.gap)} ms`,
        );
        if (errs > 0) verdicts.push(`FAIL  ${t.name}: ${errs} failed requests at ${c} concurrent`);
      }
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
          added,
        ),
      );
      out("\n");
    }
    out("## Goals\n\n");
    for (const v of verdicts) out(`${v}\n`);
    out(
      "\nNotes: the beta9 path has two hops (client → b9gateway → agent channel (HTTP/2) → b9agent → upstream);\n" +
        "nginx is one hop (1 worker, proxy_buffering off, upstream keepalive). All processes (bench client,\n" +
        `upstream, nginx, gateway, agent) share this ${os.cpus().length}-CPU machine, so proxies compete with the\n` +
        "client and the upstream for CPU, and the 64-client numbers include that queueing. LiteLLM was not measured.\n",
    );
  } finally {
    for (const t of targets) await t.pool.close();
    const pids = b9.enginePids();
    await b9.agent.proc.stop();
    await b9.gw.proc.stop();
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    if (typeof nginx !== "string") await stopChild(nginx.proc);
    await stopChild(upstream.proc);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
