import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import {
  BIN,
  builtinEnginePids,
  type GatewayProc,
  initAgent,
  Proc,
  processAlive,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
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
function agentOnTerminal(
  configPath: string,
  size = { columns: 120, rows: 40 },
  flags: string[] = [],
): TmuxTerminal {
  const term = new TmuxTerminal({
    args: [BIN.agent, "run", "--listen", "127.0.0.1:0", ...flags],
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

/**
 * Wait until one capture of the screen shows all of `wanted` (a capture can catch Ink between two
 * writes of a frame, so nothing is concluded from a single one).
 */
async function screenShows(term: TmuxTerminal, ...wanted: (string | RegExp | ((s: string) => boolean))[]) {
  let screen = "";
  const shows = (w: (typeof wanted)[number]) =>
    typeof w === "string" ? screen.includes(w) : w instanceof RegExp ? w.test(screen) : w(screen);
  await waitFor(
    () => {
      screen = term.screen();
      return wanted.every(shows);
    },
    { timeoutMs: 30_000, what: "the agent's screen" },
  ).catch((err: Error) => {
    const missing = wanted.filter((w) => !shows(w)).map(String);
    throw new Error(`${err.message} to show ${missing.join(", ")}\n--- screen ---\n${screen}`);
  });
  return screen;
}

/** The dashboard fills the terminal exactly: a frame from the first row, every row as wide as the terminal. */
function fillsTerminal(columns: number, rows: number) {
  return function fills(screen: string): boolean {
    const lines = screen.replace(/\n+$/, "").split("\n");
    return (
      lines.length === rows &&
      /^╔.*╗$/.test(lines[0] ?? "") &&
      /^╚═+╝$/.test(lines.at(-2) ?? "") &&
      lines.slice(0, -1).every((l) => [...l].length === columns)
    );
  };
}

/** Whether, on one row of the screen, the heading in "HEADING:cell" starts in the column where the cell does on another. */
function columnOf(screen: string, pair: string): boolean {
  const [heading = "", cell = ""] = pair.split(":");
  const lines = screen.split("\n");
  const at = (text: string) => lines.find((l) => l.includes(text))?.indexOf(text);
  return at(heading) !== undefined && at(heading) === at(cell);
}

/** Wait for the program on `term` to end; its exit code, or the signal that killed it. */
async function exitOf(term: TmuxTerminal, what: string) {
  // The status seen is the one returned: a second look can fall between the zombie's reaping and
  // tmux recording it, and find nothing.
  let seen: ReturnType<TmuxTerminal["exit"]> = null;
  await waitFor(
    () => {
      seen = term.exit();
      return seen !== null;
    },
    { what, timeoutMs: 20_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${term.describe()}`);
  });
  return seen;
}

describe("b9agent dashboard on a real terminal", () => {
  it("shows the machine READY, a replica the gateway placed and its requests, survives the gateway going away, and quits on q with its engine stopped", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "tui-box" });
    const { id } = allowTestModel(path);
    const term = agentOnTerminal(path);

    await screenShows(
      term,
      `Beta9 Agent: ${id} (tui-box)`,
      `Status: READY │ Gateway: ${gw.url} connected │ Pool: external`,
      /CPU: \d+\.\d% │ Memory: \d+\.\d% of [\d.]+ GiB │ GPUs: \d+ │ Last Heartbeat: \d+s ago/,
      /║ SERVED MODELS +║/,
      "No models served yet",
      /║ INFERENCE +║/,
      /Status: stopped │ Endpoint: http:\/\/127\.0\.0\.1:\d+\/v1/,
      "Models: none",
      /║ LOGS +║/,
      /\d\d:\d\d:\d\d connected to gateway/,
      fillsTerminal(120, 40),
    );

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
    await screenShows(
      term,
      /smollm2 +replica +ready +0 running · 1 done/,
      /Status: running │ Endpoint: http:\/\/127\.0\.0\.1:\d+\/v1 │ Engines: .*builtin/,
      /smollm2 +ready +builtin · \d+ MiB · ctx 2048/,
      "pull smollm2: 100%",
      /\d\d:\d\d:\d\d pulled smollm2 \(\d+ MiB\)/,
      "smollm2 is ready",
      // The builtin engine logs pino JSON: LOGS shows its sentences, never the JSON.
      "model loaded",
      (screen) => !screen.includes("{"),
    );

    // The most common terminal: the frame is whole and what fits is not cut.
    term.resize(80, 24);
    await screenShows(
      term,
      fillsTerminal(80, 24),
      `Status: READY │ Gateway: ${gw.url} connected │ Pool: external`,
      /║ smollm2 +replica +ready +0 running · 1 done · \d+s ago +║/,
      // Each cell of the served models' table starts under its heading.
      (screen) =>
        ["ROLE:replica", "STATE:ready", "REQUESTS:0 running"].every((pair) => columnOf(screen, pair)),
      (screen) => !screen.includes("…"),
    );
    term.resize(120, 40);
    const agentPid = term.pid();
    const engines = builtinEnginePids(agentPid);
    expect(engines).toHaveLength(1);

    // The gateway goes away: the dashboard says so and the agent (and its engine) keep running.
    await gw.proc.stop();
    await screenShows(
      term,
      /Status: DISCONNECTED │ Gateway: \S+ unreachable, reconnecting/,
      "lost the gateway; reconnecting",
      "cannot reach the gateway; will retry: ECONNREFUSED",
    );
    expect(term.exit()).toBeNull();
    expect(processAlive(agentPid)).toBe(true);
    expect(engines.every(processAlive)).toBe(true);

    term.press("q");
    expect(await exitOf(term, "the agent to exit after q")).toEqual({ code: 0, signal: null });
    expect(processAlive(agentPid)).toBe(false);
    await waitFor(() => !engines.some(processAlive), { what: "the engine to be stopped", timeoutMs: 5_000 });
  }, 120_000);

  it("lists a job the gateway runs here in JOBS: its state, runtime, CPU or GPU, and last line", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "tui-jobs" });
    const { token } = allowTestModel(path);
    const term = agentOnTerminal(path, { columns: 100, rows: 30 }, []);
    const screen = await screenShows(
      term,
      /║ JOBS +║/,
      "No jobs yet",
      /Endpoint: http:\/\/127\.0\.0\.1:\d+\/v1/,
    );
    const control = `http://127.0.0.1:${/Endpoint: http:\/\/127\.0\.0\.1:(\d+)\/v1/.exec(screen)?.[1]}`;
    const call = (method: string, p: string, body?: unknown) =>
      fetch(control + p, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const run = await call("POST", "/jobs", {
      job_id: "job-on-screen",
      attempt: 1,
      spec: { command: ["sh", "-c", "echo epoch 1 of 3; sleep 60"] },
      gpus: [],
      inputs: [],
    });
    expect(run.status).toBe(200);
    await screenShows(
      term,
      /║ JOBS │ 1 running +║/,
      /job-on-screen +RUNNING +\d+s +cpu +epoch 1 of 3/,
      (s) => ["STATE:RUNNING", "LAST LINE:epoch"].every((pair) => columnOf(s, pair)),
      fillsTerminal(100, 30),
    );
    expect((await call("POST", "/jobs/job-on-screen/cancel")).status).toBe(200);
    await screenShows(term, /job-on-screen +CANCELLED +\d+s +cpu +epoch 1 of 3/, /║ JOBS +║/);
    await run.body?.cancel();
    term.press("q");
    expect(await exitOf(term, "the agent to exit after q")).toEqual({ code: 0, signal: null });
  }, 90_000);

  it("says so when the terminal is too small, redraws when it grows again, and quits on Ctrl+C", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "small-box" });
    const term = agentOnTerminal(path, { columns: 100, rows: 30 });
    await screenShows(term, /Status: READY/);

    term.resize(50, 12);
    const screen = await screenShows(term, "Terminal too small (50×12)", "b9agent --no-tui");
    expect(screen).not.toContain("╔");

    term.resize(80, 24);
    await screenShows(term, "Status: READY", fillsTerminal(80, 24));

    term.press("C-c");
    expect(await exitOf(term, "the agent to exit after Ctrl+C")).toEqual({ code: 0, signal: null });
  }, 60_000);

  it("writes plain log lines instead when stdout is not a terminal, or with --no-tui", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "plain-box" });

    const piped = new Proc([BIN.agent, "run", "--listen", "127.0.0.1:0"], { B9AGENT_CONFIG: path });
    cleanups.push(() => piped.stop());
    await piped.waitForLog((e) => e.msg === "gateway says this machine is READY");
    expect(piped.lines.join("\n")).not.toContain("Beta9 Agent");
    await piped.stop();

    const term = agentOnTerminal(path, { columns: 120, rows: 40 }, ["--no-tui"]);
    const screen = await screenShows(
      term,
      /INFO.*connected to gateway/,
      "gateway says this machine is READY",
    );
    expect(screen).not.toContain("Beta9 Agent");
    expect(screen).not.toContain("╔");
  }, 60_000);
});
