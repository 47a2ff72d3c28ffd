import { readFileSync } from "node:fs";
import {
  type AgentProc,
  allowTestModel,
  builtinEnginePids,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * An idle agent and its warm builtin engine give start-up's memory back (issue 18): a real agent with
 * the product's default, the engine kept warm, and the real SmolLM2 GGUF served after both have done so.
 */

const MiB = 2 ** 20;

let gw: GatewayProc;
let agent: AgentProc;
let token: string;

async function control(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** The log entry (the agent's own, or an engine line it relays) that says memory was given back. */
function released(
  engine: boolean,
  what = "gave start-up memory back",
): { rss_before: number; rss_after: number } | undefined {
  for (const line of agent.proc.lines) {
    if (!line.includes(what)) continue;
    const entry = JSON.parse(line) as {
      engine?: string;
      msg: string;
      rss_before?: number;
      rss_after?: number;
    };
    if (!engine && entry.engine === undefined) return entry as { rss_before: number; rss_after: number };
    if (engine && entry.engine === "builtin") return JSON.parse(entry.msg);
  }
  return undefined;
}

/** A process's resident memory now, in bytes (what `top` shows a volunteer). */
function rss(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(kb?.[1]) * 1024;
}

/** The warm engine's RSS once idle, before it served anything. */
let idleEngineRss = 0;

beforeAll(async () => {
  gw = await startGateway();
  const path = await initAgent(gw, { name: "idle-box", keepEngineWarm: true });
  token = allowTestModel(path).machine.token;
  agent = await startAgent(path);
}, 120_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("an idle agent", () => {
  it("gives start-up's memory back, and its young generation stays small", async () => {
    await waitFor(() => released(false) !== undefined, {
      what: "the agent's line that it gave memory back",
      timeoutMs: 60_000,
    });
    const entry = released(false)!;
    expect(entry.rss_after).toBeLessThan(entry.rss_before);
    const metrics = await (await control("GET", "/metrics")).text();
    const newSpace = /beta9_agent_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/.exec(metrics);
    // Node 24's default grew it to 32 MB at start-up; the agent holds it at 4 MB.
    expect(Number(newSpace?.[1])).toBeLessThanOrEqual(4 * MiB);
  }, 90_000);

  it("runs with its own malloc settings in the same process, and its engine does not inherit them", async () => {
    // bin/malloc.js starts the agent again with them: the process the test started is the one running.
    const pid = agent.proc.child.pid!;
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(environ).toContain("MALLOC_MMAP_THRESHOLD_=32768");
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("b9agent.js");
    await waitFor(() => builtinEnginePids(pid).length > 0, { what: "the warm engine", timeoutMs: 60_000 });
    const [engine] = builtinEnginePids(pid);
    const engineEnv = readFileSync(`/proc/${engine}/environ`, "utf8").split("\0");
    expect(engineEnv.filter((v) => v.startsWith("MALLOC_MMAP_THRESHOLD_="))).toEqual([
      `MALLOC_MMAP_THRESHOLD_=${4 * MiB}`,
    ]);
    expect(engineEnv.some((v) => v.startsWith("B9AGENT_MALLOC_SET="))).toBe(false);
  });

  it("leaves an operator's own malloc setting as it is", async () => {
    const other = await initAgent(gw, { name: "tuned-box" });
    const tuned = await startAgent(other, { env: { MALLOC_MMAP_THRESHOLD_: "65536" } });
    try {
      const environ = readFileSync(`/proc/${tuned.proc.child.pid}/environ`, "utf8").split("\0");
      expect(environ).toContain("MALLOC_MMAP_THRESHOLD_=65536");
      expect(environ.some((v) => v.startsWith("B9AGENT_MALLOC_SET="))).toBe(false);
    } finally {
      await tuned.proc.stop();
    }
  }, 60_000);

  it("has its warm engine give start-up's memory back, and the engine still serves a model after", async () => {
    await waitFor(() => released(true) !== undefined, {
      what: "the warm engine's line that it gave memory back",
      timeoutMs: 60_000,
    });
    const entry = released(true)!;
    expect(entry.rss_after).toBeLessThan(entry.rss_before);
    const [engine] = builtinEnginePids(agent.proc.child.pid!);
    idleEngineRss = rss(engine!);
    const pulled = await control("POST", "/inference/pull", { model: "smollm2", source: testModelPath() });
    expect(pulled.status).toBe(201);
    const started = await control("POST", "/inference/start", { model: "smollm2", context_size: 2048 });
    expect(await started.json()).toMatchObject({ status: "running" });
    expect(builtinEnginePids(agent.proc.child.pid!)).toEqual([engine]);
    const chat = await control("POST", "/v1/chat/completions", {
      model: "smollm2",
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 8,
    });
    expect(chat.status).toBe(200);
    const answer = (await chat.json()) as { choices: { message: { content: string } }[] };
    expect(answer.choices[0]?.message.content.length).toBeGreaterThan(0);
  }, 90_000);

  it("has its warm engine give an unloaded model's memory back when the model stops", async () => {
    const [engine] = builtinEnginePids(agent.proc.child.pid!);
    const loadedRss = rss(engine!);
    const stopped = await control("POST", "/inference/stop", { model: "smollm2" });
    expect(await stopped.json()).toMatchObject({ status: "stopped", models: [] });
    await waitFor(() => released(true, "gave the unloaded models' memory back") !== undefined, {
      what: "the warm engine's line that it gave the unloaded model's memory back",
      timeoutMs: 60_000,
    });
    expect(builtinEnginePids(agent.proc.child.pid!)).toEqual([engine]);
    const after = rss(engine!);
    // Most of what the model took comes back (the figures in bench/engine: ~455 MB loaded, ~160 after).
    expect(after - idleEngineRss).toBeLessThan((loadedRss - idleEngineRss) / 2);
    // What gives llama.cpp's freed memory back to the system (glibc kept ~100 MB of it over the idle
    // figure): the agent starts its engine with malloc settings; what stays is in bench/engine.
    const environ = readFileSync(`/proc/${engine}/environ`, "utf8").split("\0");
    expect(environ).toEqual(
      expect.arrayContaining(["MALLOC_ARENA_MAX=2", `MALLOC_TRIM_THRESHOLD_=${4 * MiB}`]),
    );
  }, 90_000);
});
