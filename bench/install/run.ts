/**
 * Install bench: the programs installed from scripts/pack's tarballs (by the OS npm, into a temporary
 * prefix) against the same programs run from the clone. Measures the agent's idle RSS and each
 * program's start-up time, printed side by side as installed/clone ratios. See README.md beside this
 * file.
 *
 *   npx node bench/install/run.ts [--rounds 5] [--prefix DIR] [--settle 5s] [--idle-samples 5]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { parseDuration } from "@beta9/protocol";
import { BIN, type GatewayProc, initAgent, startGateway, tempDir } from "@beta9/test-utils";
import { children, statusKb } from "../common/procfs.ts";
import { machineLine, median, ms, out, ratio, table } from "../common/stats.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const OS_NPM = "/usr/bin/npm";
const OS_NODE = "/usr/bin/node";
/** A machine without a clone: the OS node first on PATH, no Node 24 but the one the packages bring. */
const OS_PATH = "/usr/bin:/bin";
const IDLE_RSS_GOAL_MB = 80;

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    prefix: { type: "string" },
    settle: { type: "string", default: "5s" },
    "idle-samples": { type: "string", default: "5" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  out("usage: npx node bench/install/run.ts [--rounds 5] [--prefix DIR] [--settle 5s] [--idle-samples 5]\n");
  process.exit(0);
}
const ROUNDS = Math.max(1, Number(values.rounds));
const SETTLE_MS = parseDuration(values.settle);
const IDLE_SAMPLES = Math.max(1, Number(values["idle-samples"]));

/** How each program is started in each way; `args` follow. */
interface Variant {
  name: string;
  command(program: "b9" | "b9gateway" | "b9agent"): string[];
  env: NodeJS.ProcessEnv;
}

const PACKAGE = { b9: "cli", b9gateway: "gateway", b9agent: "agent" } as const;
const CLONE_BIN = { b9: BIN.cli, b9gateway: BIN.gateway, b9agent: BIN.agent } as const;

const live = new Set<ChildProcess>();
const cleanup: (() => void)[] = [];
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
  for (const f of cleanup.reverse()) f();
});
for (const s of ["SIGINT", "SIGTERM"] as const) process.on(s, () => process.exit(130));

function launch(v: Variant, program: keyof typeof PACKAGE, args: string[], env: NodeJS.ProcessEnv = {}) {
  const [command, ...rest] = v.command(program);
  const child = spawn(command!, [...rest, ...args], {
    env: { ...process.env, ...v.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  const keep = (b: Buffer) => {
    tail = (tail + b.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  live.add(child);
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (code) => {
      live.delete(child);
      r(code);
    }),
  );
  return { child, exited, tail: () => tail };
}

async function stop(p: ReturnType<typeof launch>): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
  await p.exited;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Poll `url` until it answers 200; the ms from `t0`. */
async function answered(
  url: string,
  t0: number,
  p: ReturnType<typeof launch>,
  timeoutMs = 60_000,
): Promise<number> {
  const deadline = t0 + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - t0;
    } catch {}
    if (p.child.exitCode !== null)
      throw new Error(`it exited (${p.child.exitCode}) before ${url} answered:\n${p.tail()}`);
    if (performance.now() > deadline)
      throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${p.tail()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------
// Install

function install(): string {
  if (values.prefix) return path.resolve(values.prefix);
  const packDir = tempDir("b9-bench-pack-");
  const prefix = tempDir("b9-bench-prefix-");
  cleanup.push(() => {
    fs.rmSync(packDir, { recursive: true, force: true });
    fs.rmSync(prefix, { recursive: true, force: true });
  });
  out("packing (scripts/pack) and installing with the OS npm…\n");
  const tarballs = execFileSync(path.join(ROOT, "scripts/pack"), [packDir], { encoding: "utf8" })
    .trim()
    .split("\n")
    .filter((t) => /beta9-(cli|gateway|agent)-/.test(t));
  execFileSync(
    OS_NPM,
    [
      "install",
      "--global",
      "--prefix",
      prefix,
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...tarballs,
    ],
    { env: { ...process.env, PATH: OS_PATH }, stdio: ["ignore", "ignore", "inherit"] },
  );
  return prefix;
}

const prefix = install();
const osNode = execFileSync(OS_NODE, ["--version"], { encoding: "utf8" }).trim();
const VARIANTS: Variant[] = [
  { name: "clone", command: (p) => [process.execPath, CLONE_BIN[p]], env: {} },
  {
    name: `installed, OS node ${osNode}`,
    command: (p) => [path.join(prefix, "bin", p)],
    env: { PATH: OS_PATH },
  },
  {
    name: "installed, Node 24",
    command: (p) => [
      process.execPath,
      path.join(prefix, "lib/node_modules/@beta9", PACKAGE[p], "bin", `${p}.js`),
    ],
    env: {},
  },
];

// ---------------------------------------------------------------------------------------------
// Measure

out(`${machineLine()}\n`);
out(`installed in ${prefix}; ${ROUNDS} rounds after one warm-up (compile caches filled)\n\n`);

const gw: GatewayProc = await startGateway();
cleanup.push(() => gw.proc.child.kill("SIGKILL"));
const configs = new Map<string, string>();
for (const v of VARIANTS) configs.set(v.name, await initAgent(gw, { name: v.name.replace(/\W+/g, "-") }));

/** The pid of the program itself: the shim's child when the shim re-ran it on Node 24. */
function programPid(pid: number): { pid: number; shim?: number } {
  const child = children(pid).find((c) => c.args.includes("b9agent"));
  return child ? { pid: child.pid, shim: pid } : { pid };
}

type Step = "b9 --version" | "b9gateway → /health" | "b9agent → control API";
const timings: Record<string, Record<Step, number[]>> = {};
const rss: Record<string, { agent: number; anon: number; file: number; shim: number }> = {};

const dataDirs = new Map<string, string>();
for (const v of VARIANTS) {
  timings[v.name] = { "b9 --version": [], "b9gateway → /health": [], "b9agent → control API": [] };
  const dir = tempDir("b9-bench-gw-");
  dataDirs.set(v.name, dir);
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
}
// Round by round, each way in turn: the machine's load changes alike for all three.
for (let round = 0; round <= ROUNDS; round++) {
  for (const v of VARIANTS) {
    const t = timings[v.name]!;
    const dataDir = dataDirs.get(v.name)!;
    const keep = (step: Step, x: number) => {
      if (round > 0) t[step].push(x);
    };

    let t0 = performance.now();
    const cli = launch(v, "b9", ["--version"]);
    if ((await cli.exited) !== 0) throw new Error(`b9 --version failed:\n${cli.tail()}`);
    keep("b9 --version", performance.now() - t0);

    const gwPort = await freePort();
    t0 = performance.now();
    const g = launch(v, "b9gateway", [
      "--host",
      "127.0.0.1",
      "--port",
      String(gwPort),
      "--data-dir",
      dataDir,
    ]);
    keep("b9gateway → /health", await answered(`http://127.0.0.1:${gwPort}/health`, t0, g));
    await stop(g);

    const agentPort = await freePort();
    t0 = performance.now();
    const a = launch(v, "b9agent", ["run", "--no-tui", "--listen", `127.0.0.1:${agentPort}`], {
      B9AGENT_CONFIG: configs.get(v.name),
    });
    keep("b9agent → control API", await answered(`http://127.0.0.1:${agentPort}/health`, t0, a));
    if (round === ROUNDS) {
      // Idle: joined, nothing served, no engine kept warm (initAgent's config).
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const { pid, shim } = programPid(a.child.pid!);
      const samples: number[] = [];
      for (let i = 0; i < IDLE_SAMPLES; i++) {
        samples.push(statusKb(pid, "VmRSS"));
        await new Promise((r) => setTimeout(r, 1000));
      }
      rss[v.name] = {
        agent: median(samples) / 1024,
        anon: statusKb(pid, "RssAnon") / 1024,
        file: statusKb(pid, "RssFile") / 1024,
        shim: shim ? statusKb(shim, "VmRSS") / 1024 : 0,
      };
    }
    await stop(a);
  }
}

// What Node 24 itself holds, doing nothing: the floor under any agent.
const bare = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
live.add(bare);
await new Promise((r) => setTimeout(r, SETTLE_MS));
const bareNode = { rss: statusKb(bare.pid!, "VmRSS") / 1024, anon: statusKb(bare.pid!, "RssAnon") / 1024 };
bare.kill("SIGKILL");

const clone = VARIANTS[0]!.name;
const mb = (x: number) => (x > 0 ? `${x.toFixed(1)} MB` : "-");
out("Agent idle RSS (VmRSS of the process running the agent; the shim is the OS node that re-ran it)\n");
out(
  table(
    ["run as", "agent", "anon", "file", "shim", "agent/clone", `goal < ${IDLE_RSS_GOAL_MB} MB`],
    VARIANTS.map((v) => {
      const r = rss[v.name]!;
      return [
        v.name,
        mb(r.agent),
        mb(r.anon),
        mb(r.file),
        mb(r.shim),
        ratio(r.agent, rss[clone]!.agent),
        r.agent < IDLE_RSS_GOAL_MB ? "met" : "not met",
      ];
    }),
  ),
);
out(`(Node ${process.versions.node} running nothing: ${mb(bareNode.rss)}, anon ${mb(bareNode.anon)})\n`);
out("\nStart-up, median ms (ratio to the clone)\n");
const steps = Object.keys(timings[clone]!) as Step[];
out(
  table(
    ["program", ...VARIANTS.map((v) => v.name)],
    steps.map((s) => [
      s,
      ...VARIANTS.map((v) => {
        const m = median(timings[v.name]![s]!);
        return v.name === clone ? ms(m) : `${ms(m)} (${ratio(m, median(timings[clone]![s]!))})`;
      }),
    ]),
  ),
);
await gw.proc.stop();
process.exit(0);
