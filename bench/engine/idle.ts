/**
 * Idle memory of a joined agent and its warm builtin engine (issue 18): a real b9gateway, one agent
 * config made by `b9agent init` with inference.keep_engine_warm on (the product's default), then the
 * agent of this checkout (or of --after DIR) and, with --before DIR, the agent of another checkout (a
 * git worktree of the code before a change) started from the same config in turn, rounds alternating. Each sits idle,
 * serving nothing, for --settle; then the VmRSS of the agent and of its engine is sampled once a second.
 * Prints the medians with the anon/file split, the ratios to the baseline and PASS/FAIL against the
 * goals (agent < 80 MB, warm engine < 100 MB). Then the agent serves the test model (BETA9_TEST_MODEL):
 * pull, start, a few chats, stop; the warm engine's RSS once it is idle again is the "after a stop" row.
 * See README.md beside this file.
 *
 *   npx node bench/engine/idle.ts [--before /tmp/wt-before] [--after DIR] [--rounds 3] [--settle 15s] [--samples 5]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "@beta9/protocol";
import {
  allowTestModel,
  builtinEnginePids,
  initAgent,
  Proc,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { statusKb } from "../common/procfs.ts";
import { loadavg1, machineLine, median, out, ratio, table } from "../common/stats.ts";

const AGENT_GOAL_MB = 80;
const ENGINE_GOAL_MB = 100;
const HERE = path.resolve(import.meta.dirname, "../..");

const { values } = parseArgs({
  options: {
    before: { type: "string" },
    after: { type: "string" },
    rounds: { type: "string", default: "3" },
    settle: { type: "string", default: "15s" },
    samples: { type: "string", default: "5" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  out(
    "usage: npx node bench/engine/idle.ts [--before DIR] [--after DIR] [--rounds 3] [--settle 15s] [--samples 5]\n",
  );
  process.exit(0);
}
const rounds = Number(values.rounds);
const settleMs = parseDuration(values.settle);
const samples = Number(values.samples);
const checkouts: { name: string; root: string }[] = [
  ...(values.before ? [{ name: "before", root: path.resolve(values.before) }] : []),
  { name: "after", root: values.after ? path.resolve(values.after) : HERE },
];

interface Memory {
  rss: number;
  anon: number;
  file: number;
}
const read = (pid: number): Memory => ({
  rss: statusKb(pid, "VmRSS") / 1024,
  anon: statusKb(pid, "RssAnon") / 1024,
  file: statusKb(pid, "RssFile") / 1024,
});
const mid = (xs: Memory[]): Memory => ({
  rss: median(xs.map((m) => m.rss)),
  anon: median(xs.map((m) => m.anon)),
  file: median(xs.map((m) => m.file)),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The agent's control API: pull, start and stop the test model, and chat. */
async function control(url: string, token: string, route: string, body: unknown): Promise<void> {
  const res = await fetch(url + route, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${route}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/**
 * One idle agent of `root` with the shared config: its and its warm engine's memory after settling,
 * then the engine's once it has served the test model and the model stopped.
 */
async function idleOnce(
  root: string,
  configPath: string,
  token: string,
): Promise<{ agent: Memory; engine: Memory; stopped: Memory }> {
  const bin = path.join(root, "packages/agent/bin/b9agent.js");
  const proc = new Proc([bin, "run", "--no-tui", "--listen", "127.0.0.1:0"], {
    B9AGENT_CONFIG: configPath,
    BETA9_LOG_LEVEL: "info",
  });
  try {
    const listening = await proc.waitForLog((e) => Array.isArray(e.addresses), 60_000);
    const url = `http://${(listening.addresses as string[])[0]}`;
    await proc.waitForLog((e) => e.msg === "connected to gateway", 60_000);
    await proc.waitForLog((e) => String(e.msg).includes("builtin engine kept warm"), 60_000);
    const agentPid = proc.child.pid!;
    await waitFor(() => builtinEnginePids(agentPid).length > 0, {
      what: "the warm engine",
      timeoutMs: 30_000,
    });
    const enginePid = builtinEnginePids(agentPid)[0]!;
    await sleep(settleMs);
    const a: Memory[] = [];
    const e: Memory[] = [];
    for (let i = 0; i < samples; i++) {
      if (i > 0) await sleep(1_000);
      a.push(read(agentPid));
      e.push(read(enginePid));
    }
    await control(url, token, "/inference/pull", { model: "smollm2", source: testModelPath() });
    await control(url, token, "/inference/start", { model: "smollm2", context_size: 2048 });
    for (let i = 0; i < 3; i++)
      await control(url, token, "/v1/chat/completions", {
        model: "smollm2",
        messages: [{ role: "user", content: `Tell me a story, number ${i}.` }],
        max_tokens: 32,
      });
    await control(url, token, "/inference/stop", { model: "smollm2" });
    await sleep(5_000);
    return { agent: mid(a), engine: mid(e), stopped: read(enginePid) };
  } finally {
    await proc.stop();
  }
}

const gw = await startGateway();
try {
  const configPath = await initAgent(gw, { name: "idle-bench", keepEngineWarm: true });
  const { token } = allowTestModel(configPath).machine;
  out(`${machineLine()}\n`);
  out(
    `${rounds} rounds, checkouts alternating (${checkouts.map((c) => `${c.name}: ${c.root}`).join("; ")}); ` +
      `${(settleMs / 1000).toFixed(0)} s idle, then ${samples} samples 1 s apart\n`,
  );
  const results = new Map<string, { agent: Memory[]; engine: Memory[]; stopped: Memory[]; load: number[] }>();
  for (const c of checkouts) results.set(c.name, { agent: [], engine: [], stopped: [], load: [] });
  // A first start fills Node's compile cache for each checkout (a cache miss loads the TypeScript stripper).
  for (const c of checkouts) await idleOnce(c.root, configPath, token);
  for (let r = 0; r < rounds; r++) {
    for (const c of r % 2 === 0 ? checkouts : [...checkouts].reverse()) {
      const m = await idleOnce(c.root, configPath, token);
      const into = results.get(c.name)!;
      into.agent.push(m.agent);
      into.engine.push(m.engine);
      into.stopped.push(m.stopped);
      into.load.push(loadavg1());
      out(
        `  round ${r + 1} ${c.name}: agent ${m.agent.rss.toFixed(1)} MB, engine ${m.engine.rss.toFixed(1)} MB, ` +
          `engine after a stop ${m.stopped.rss.toFixed(1)} MB\n`,
      );
    }
  }
  const base = results.get(checkouts[0]!.name)!;
  const label = { agent: "agent", engine: "engine", stopped: "engine after a stop" };
  const row = (name: string, what: "agent" | "engine" | "stopped", goal: number): string[] => {
    const m = mid(results.get(name)![what]);
    const b = mid(base[what]);
    return [
      `${label[what]}, ${name}`,
      `${m.rss.toFixed(1)} MB`,
      `${m.anon.toFixed(1)} MB`,
      `${m.file.toFixed(1)} MB`,
      values.before ? ratio(m.rss, b.rss) : "-",
      what === "stopped" ? "-" : m.rss < goal ? `PASS (< ${goal} MB)` : `FAIL (< ${goal} MB)`,
    ];
  };
  const rows: string[][] = [];
  for (const [what, goal] of [
    ["agent", AGENT_GOAL_MB],
    ["engine", ENGINE_GOAL_MB],
    ["stopped", ENGINE_GOAL_MB],
  ] as const)
    for (const c of checkouts) rows.push(row(c.name, what, goal));
  out(`\nIdle RSS, median of ${rounds} rounds (VmRSS; anon and file-backed parts)\n`);
  out(`${table(["process", "RSS", "anon", "file", "to before", "goal"], rows)}\n`);
  out(
    `1-minute load average during the rounds: ${[...results.values()]
      .flatMap((x) => x.load)
      .map((l) => l.toFixed(1))
      .join(", ")}\n`,
  );
  const mine = results.get("after")!;
  process.exitCode = mid(mine.agent).rss < AGENT_GOAL_MB && mid(mine.engine).rss < ENGINE_GOAL_MB ? 0 : 1;
} finally {
  await gw.proc.stop();
  fs.rmSync(gw.dataDir, { recursive: true, force: true });
}
