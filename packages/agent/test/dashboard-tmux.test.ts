import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { BIN, type GatewayProc, initAgent, startGateway, testModelPath, waitFor } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import YAML from "yaml";
import { TmuxTerminal } from "./tmux.ts";

/*
 * The real b9agent on a real terminal (tmux) against a real gateway: what its owner sees on screen,
 * and that the agent outlives its gateway and quits cleanly from the keyboard.
 */

const ROOT = resolve(import.meta.dirname, "../../..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(): Promise<GatewayProc> {
  const gw = await startGateway();
  cleanups.push(() => gw.proc.stop());
  return gw;
}

/** `b9agent run` on a terminal of the given size, with the test model's folder allowed. */
function agentOnTerminal(configPath: string, size = { columns: 120, rows: 40 }): TmuxTerminal {
  const term = new TmuxTerminal({
    args: [BIN.agent, "run", "--listen", "127.0.0.1:0"],
    env: { B9AGENT_CONFIG: configPath },
    cwd: ROOT,
    ...size,
  });
  cleanups.push(() => term.close());
  return term;
}

function allowTestModel(configPath: string): { id: string; token: string } {
  const cfg = YAML.parse(readFileSync(configPath, "utf8"));
  cfg.models = { allowed_dirs: [dirname(testModelPath())] };
  writeFileSync(configPath, YAML.stringify(cfg), { mode: 0o600 });
  return { id: cfg.machine.id, token: cfg.machine.token };
}

async function screenShows(term: TmuxTerminal, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  let screen = "";
  await waitFor(
    () => {
      screen = term.screen();
      return pattern.test(screen);
    },
    { timeoutMs, what: `${pattern} on the agent's screen` },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- screen ---\n${screen}`);
  });
  return screen;
}

/** Pids of the engines this agent runs (its builtin engine children). */
function enginePids(agentPid: number): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" });
  return out
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter(
      ([, ppid, ...args]) => Number(ppid) === agentPid && args.join(" ").includes("engines/builtin/main.ts"),
    )
    .map(([pid]) => Number(pid));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("b9agent dashboard on a real terminal", () => {
  it("shows the machine READY, a replica the gateway placed and its requests, survives the gateway going away, and quits on q with its engine stopped", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "tui-box" });
    const { id } = allowTestModel(path);
    const term = agentOnTerminal(path);

    let screen = await screenShows(term, /Status: READY/);
    expect(screen).toContain(`Beta9 Agent: ${id} (tui-box)`);
    expect(screen).toMatch(new RegExp(`Gateway: ${gw.url} connected`));
    expect(screen).toContain("Pool: external");
    expect(screen).toMatch(
      /CPU: \d+\.\d% │ Memory: \d+\.\d% of [\d.]+ GiB │ GPUs: \d+ │ Last Heartbeat: \d+s ago/,
    );
    expect(screen).toMatch(/║ JOBS +║/);
    expect(screen).toContain("No jobs yet");
    expect(screen).toMatch(/Status: stopped │ Endpoint: http:\/\/127\.0\.0\.1:\d+\/v1/);
    expect(screen).toContain("Models: none");
    expect(screen).toMatch(/\d\d:\d\d:\d\d connected to gateway/);

    // A deployment's first request places a replica here: the agent pulls and loads it, then answers.
    expect(
      (
        await gw.api("POST", "/api/v1/deployments", {
          name: "smollm2",
          source: testModelPath(),
          context_size: 2048,
        })
      ).status,
    ).toBe(201);
    const chat = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
    });
    expect(chat.status, await chat.clone().text()).toBe(200);
    screen = await screenShows(term, /smollm2 +replica +ready +0 running · 1 done/);
    expect(screen).toMatch(/Status: running │ Endpoint: http:\/\/127\.0\.0\.1:\d+\/v1 │ Engines: .*builtin/);
    expect(screen).toMatch(/smollm2 +ready +builtin · \d+ MiB · ctx 2048/);
    expect(screen).toMatch(/pull smollm2: 100%/);
    expect(screen).toContain("smollm2 is ready");
    const agentPid = term.pid();
    const engines = enginePids(agentPid);
    expect(engines).toHaveLength(1);

    // The gateway goes away: the dashboard says so and the agent (and its engine) keep running.
    await gw.proc.stop();
    screen = await screenShows(term, /Status: DISCONNECTED │ Gateway: \S+ unreachable, reconnecting/);
    expect(screen).toMatch(/lost the gateway; reconnecting/);
    await screenShows(term, /cannot reach the gateway; will retry: ECONNREFUSED/);
    expect(term.exitStatus()).toBeNull();
    expect(alive(agentPid)).toBe(true);
    expect(engines.every(alive)).toBe(true);

    term.press("q");
    await waitFor(() => term.exitStatus() !== null, { what: "the agent to exit after q", timeoutMs: 20_000 });
    expect(term.exitStatus()).toBe(0);
    expect(alive(agentPid)).toBe(false);
    await waitFor(() => !engines.some(alive), { what: "the engine to be stopped", timeoutMs: 5_000 });
  }, 120_000);

  it("says so when the terminal is too small, redraws when it grows again, and quits on Ctrl+C", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "small-box" });
    const term = agentOnTerminal(path, { columns: 100, rows: 30 });
    await screenShows(term, /Status: READY/);

    term.resize(50, 12);
    let screen = await screenShows(term, /Terminal too small \(50×12\)/);
    expect(screen).not.toContain("╔");
    expect(screen).toContain("b9agent --no-tui");

    term.resize(80, 24);
    screen = await screenShows(term, /╔══ Beta9 Agent/);
    const rows = screen.replace(/\n+$/, "").split("\n");
    expect(rows).toHaveLength(24);
    expect(rows[0]).toMatch(/^╔.*╗$/);
    expect(rows.at(-2)).toMatch(/^╚═+╝$/);
    for (const row of rows) expect([...row].length).toBeLessThanOrEqual(80);
    expect(rows.filter((r) => r.startsWith("║")).every((r) => [...r].length === 80)).toBe(true);

    term.press("C-c");
    await waitFor(() => term.exitStatus() !== null, {
      what: "the agent to exit after Ctrl+C",
      timeoutMs: 20_000,
    });
    expect(term.exitStatus()).toBe(0);
  }, 60_000);
});
