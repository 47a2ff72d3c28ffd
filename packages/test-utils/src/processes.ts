import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import YAML from "yaml";
import { testModelPath } from "./model.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
export const BIN = {
  gateway: join(ROOT, "packages/gateway/bin/b9gateway.js"),
  agent: join(ROOT, "packages/agent/bin/b9agent.js"),
  cli: join(ROOT, "packages/cli/bin/b9.js"),
};

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/**
 * How to launch a process somewhere else: argv put before node's, e.g. `ip netns exec NS` to run it
 * on a host of a network-namespace cluster. That command must exec node, so the pid stays node's.
 */
export interface Launch {
  prefix?: string[];
}

/** A real child process whose JSON log lines are kept and can be waited on. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  #exited: Promise<number | null>;
  constructor(args: string[], env: NodeJS.ProcessEnv, launch: Launch = {}) {
    const [command, ...before] = [...(launch.prefix ?? []), process.execPath];
    this.child = spawn(command!, [...before, ...args], {
      env: { ...process.env, BETA9_LOG_LEVEL: "debug", ...env },
      stdio: "pipe",
    });
    running.add(this.child);
    const collect = (buf: Buffer) => {
      for (const l of buf.toString("utf8").split("\n")) if (l.trim()) this.lines.push(l);
    };
    this.child.stdout?.on("data", collect);
    this.child.stderr?.on("data", collect);
    this.#exited = new Promise((r) =>
      this.child.on("exit", (code) => {
        running.delete(this.child);
        r(code);
      }),
    );
  }

  get exited(): Promise<number | null> {
    return this.#exited;
  }

  /** Parsed JSON log lines (other lines skipped). */
  logs(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.lines) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {}
    }
    return out;
  }

  async waitForLog(
    match: (entry: Record<string, unknown>) => boolean,
    timeoutMs = 20_000,
  ): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitFor(
      () => {
        found = this.logs().find(match);
        return found !== undefined;
      },
      { timeoutMs, what: "a log line", proc: this },
    );
    return found!;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.#exited;
  }
}

/** What a run of the real `b9` printed, and its exit code. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real `b9` with `args` and `env`, `input` on its stdin (none by default), to its exit. */
export async function runB9(args: string[], env: NodeJS.ProcessEnv, input = ""): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN.cli, ...args], { env, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  child.stdin.end(input);
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

/**
 * The real `b9` with `args` and `env`, sent SIGINT (Ctrl-C) as soon as its stderr matches `when`; its
 * exit code and what it wrote to stderr.
 */
export async function interruptB9(
  args: string[],
  env: NodeJS.ProcessEnv,
  when: RegExp,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN.cli, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
    if (when.test(stderr)) child.kill("SIGINT");
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  return { code, stderr };
}

/** Poll until cond() is true; never sleep a fixed time in tests. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string; proc?: Proc } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) {
      const tail = opts.proc ? `\nlast output:\n${opts.proc.lines.slice(-15).join("\n")}` : "";
      throw new Error(`timed out waiting for ${opts.what ?? "condition"}${tail}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/**
 * A fresh directory for a test's files: under the run's own folder when vitest made one (it removes
 * it after the run: agents' model stores hold copies of the test model), else the system's temp dir.
 */
export function tempDir(prefix = "b9-"): string {
  return mkdtempSync(join(process.env.BETA9_TEST_TMP || tmpdir(), prefix));
}

export interface GatewayProc {
  proc: Proc;
  /** Where this test process reaches the gateway. */
  url: string;
  /** Where the gateway listens, as agents dial it (the same as `url` on loopback). */
  listenUrl: string;
  port: number;
  dataDir: string;
  adminKey: string;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    key?: string,
  ): Promise<{ status: number; body: T }>;
}

/**
 * Start the real b9gateway on 127.0.0.1 (host and port 0 unless given) and wait until it listens.
 * `via` maps the address it listens on to one this test process can reach (a tunnel into a cluster).
 */
export async function startGateway(
  opts: {
    dataDir?: string;
    host?: string;
    port?: number;
    databaseUrl?: string;
    args?: string[];
    via?: (listenUrl: string) => Promise<string>;
  } & Launch = {},
): Promise<GatewayProc> {
  const dataDir = opts.dataDir ?? tempDir("b9-gw-");
  const args = [
    BIN.gateway,
    "--host",
    opts.host ?? "127.0.0.1",
    "--port",
    String(opts.port ?? 0),
    "--data-dir",
    dataDir,
    ...(opts.args ?? []),
  ];
  if (opts.databaseUrl) args.push("--database-url", opts.databaseUrl);
  const proc = new Proc(args, {}, opts);
  const entry = await proc.waitForLog(
    (e) => typeof e.address === "string" && String(e.msg).includes("listening"),
  );
  const listenUrl = String(entry.address);
  const url = opts.via ? await opts.via(listenUrl) : listenUrl;
  const adminKey = readFileSync(join(dataDir, "admin-key"), "utf8").trim();
  return {
    proc,
    url,
    listenUrl,
    port: Number(new URL(listenUrl).port),
    dataDir,
    adminKey,
    async api<T>(method: string, path: string, body?: unknown, key: string = adminKey) {
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}

/** A new API key on `gw` that may call the inference APIs (OpenAI, Ollama) only. */
export async function inferenceKey(gw: GatewayProc, name = "app"): Promise<string> {
  return (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name, scopes: ["inference"] })).body.key;
}

export interface AgentProc {
  proc: Proc;
  configPath: string;
  controlUrl: string;
}

/** Start the real b9agent with its config at configPath, control API on a free loopback port. */
export async function startAgent(
  configPath: string,
  /** listen: null lets the agent choose its addresses itself (loopback and Tailscale). */
  opts: { waitConnected?: boolean; env?: NodeJS.ProcessEnv; listen?: string | null } & Launch = {},
): Promise<AgentProc> {
  const proc = new Proc(
    [
      BIN.agent,
      "run",
      "--no-tui",
      ...(opts.listen === null ? [] : ["--listen", opts.listen ?? "127.0.0.1:0"]),
    ],
    { ...opts.env, B9AGENT_CONFIG: configPath },
    opts,
  );
  const listening = await proc.waitForLog((e) => Array.isArray(e.addresses));
  const controlUrl = `http://${(listening.addresses as string[])[0]}`;
  if (opts.waitConnected ?? true) await proc.waitForLog((e) => e.msg === "connected to gateway");
  return { proc, configPath, controlUrl };
}

/** The virtualenv python with the test's Python packages (scripts/python-env; scripts/test sets it). */
export function testPython(): string {
  const py = process.env.BETA9_TEST_PYTHON;
  if (!py)
    throw new Error(
      "BETA9_TEST_PYTHON is not set: run the tests with `npm test`, or export the path scripts/python-env prints",
    );
  return py;
}

/** The model converter's Python, with Debian's torch (scripts/convert-env; scripts/test sets it). */
export function testConverterPython(): string {
  const py = process.env.BETA9_TEST_CONVERT_PYTHON;
  if (!py)
    throw new Error(
      "BETA9_TEST_CONVERT_PYTHON is not set: run the tests with `npm test`, or export the path scripts/convert-env prints",
    );
  return py;
}

/**
 * `b9 chat MODEL "What is the capital of France?"` at temperature 0, 12 tokens, with the real CLI: the
 * question the tests ask of every model they serve (SmolLM2 answers Paris). The test asserts.
 */
export function askFrance(model: string, env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runB9(
    ["chat", model, "What is the capital of France?", "--max-tokens", "12", "--temperature", "0"],
    env,
  );
}

/** The environment for the real b9 CLI against `gw`, with its admin key and a config file of its own. */
export function cliEnv(gw: GatewayProc): NodeJS.ProcessEnv {
  return {
    ...process.env,
    BETA9_GATEWAY: gw.url,
    BETA9_API_KEY: gw.adminKey,
    BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
  };
}

/** Wait until `gw` lists the machine named `name` READY. */
export async function waitMachineReady(gw: GatewayProc, name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () =>
      (
        await gw.api<{ machines: { name: string; status: string }[] }>("GET", "/api/v1/machines")
      ).body.machines.some((m) => m.name === name && m.status === "READY"),
    { what: `${name} READY at the gateway`, timeoutMs },
  );
}

/**
 * `b9agent init` against a gateway with a fresh join token; returns the config path. The agent keeps no
 * builtin engine warm unless `keepEngineWarm` says so: most tests' agents serve nothing, and an idle
 * engine on each would only load the CI machine (the product default, warm, is tested on its own).
 */
export async function initAgent(
  gw: GatewayProc,
  opts: {
    name?: string;
    configPath?: string;
    token?: string;
    /** The machine's country, as the operator sets it: bound to the fresh join token (b9 token create --country). */
    country?: string;
    args?: string[];
    keepEngineWarm?: boolean;
  } & Launch = {},
): Promise<string> {
  const configPath = opts.configPath ?? join(tempDir("b9-agent-"), "config.yaml");
  const token =
    opts.token ??
    (
      await gw.api<{ token: string }>("POST", "/api/v1/tokens", {
        pool: "external",
        ...(opts.country ? { country: opts.country } : {}),
      })
    ).body.token;
  const init = new Proc(
    [
      BIN.agent,
      "init",
      "--gateway",
      // An https gateway keeps its scheme: a bare HOST:PORT means http.
      gw.listenUrl.startsWith("https:") ? new URL(gw.listenUrl).origin : new URL(gw.listenUrl).host,
      "--token",
      token,
      "--name",
      opts.name ?? "worker",
      ...(opts.args ?? []),
    ],
    { B9AGENT_CONFIG: configPath },
    opts,
  );
  const code = await init.exited;
  if (code !== 0) throw new Error(`b9agent init failed (${code}):\n${init.lines.join("\n")}`);
  const cfg = YAML.parse(readFileSync(configPath, "utf8")) as { inference?: Record<string, unknown> };
  cfg.inference = { ...cfg.inference, keep_engine_warm: opts.keepEngineWarm ?? false };
  writeFileSync(configPath, YAML.stringify(cfg), { mode: 0o600 });
  return configPath;
}

export interface ModelAgent {
  agent: AgentProc;
  /** The machine credential: the bearer of the agent's control API. */
  token: string;
  /** Call the agent's control API as its owner. */
  control(method: string, path: string, body?: unknown): Promise<Response>;
  /** Pull the test model under `model` and start it; throws with the agent's answer when either fails. */
  serve(
    model: string,
    opts?: { engine?: string; contextSize?: number /** claim a gateway started it */; deployment?: boolean },
  ): Promise<void>;
  machineId: string;
}

/**
 * A real agent joined to `gw` that may read the test model's folder (models.allowed_dirs), started;
 * what most inference tests begin with.
 */
export async function startModelAgent(
  gw: GatewayProc,
  opts: {
    name?: string;
    env?: NodeJS.ProcessEnv;
    token?: string;
    /** The machine's country, bound by its join token (the operator's word, not the agent's). */
    country?: string;
    initArgs?: string[];
    /** models.allow_private_sources: addresses a workspace's deployment source may reach (a test's file server). */
    allowPrivateSources?: string[];
    listen?: string | null;
  } & Launch = {},
): Promise<ModelAgent> {
  const path = await initAgent(gw, {
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    name: opts.name ?? "worker",
    ...(opts.token ? { token: opts.token } : {}),
    ...(opts.country ? { country: opts.country } : {}),
    ...(opts.initArgs ? { args: opts.initArgs } : {}),
  });
  const { token, id: machineId } = allowTestModel(path, opts.allowPrivateSources).machine;
  const agent = await startAgent(path, {
    env: opts.env,
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    ...(opts.listen === undefined ? {} : { listen: opts.listen }),
  });
  const control = (method: string, p: string, body?: unknown) =>
    fetch(agent.controlUrl + p, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  return {
    agent,
    token,
    machineId,
    control,
    async serve(model, o = {}) {
      const pulled = await control("POST", "/inference/pull", { model, source: testModelPath() });
      if (pulled.status !== 201)
        throw new Error(`pull ${model} answered ${pulled.status}: ${await pulled.text()}`);
      const started = await control("POST", "/inference/start", {
        model,
        context_size: o.contextSize ?? 2048,
        ...(o.engine ? { engine: o.engine } : {}),
        ...(o.deployment ? { deployment: true } : {}),
      });
      if (started.status !== 200)
        throw new Error(`start ${model} answered ${started.status}: ${await started.text()}`);
      // The gateway hears of a model started on the machine itself with the next heartbeat; a test
      // that calls the gateway right away must not race it.
      await waitFor(
        async () => {
          const m = await gw.api<{ inference: { models: { name: string; state: string }[] } | null }>(
            "GET",
            `/api/v1/machines/${machineId}`,
          );
          return m.body.inference?.models.some((x) => x.name === model && x.state === "ready") ?? false;
        },
        { what: `the gateway to see ${model} ready on the machine`, timeoutMs: 30_000, proc: agent.proc },
      );
    },
  };
}

/** Let the agent configured at `path` read the test model's folder (models.allowed_dirs); returns the config. */
export function allowTestModel(
  path: string,
  allowPrivateSources?: string[],
): { machine: { id: string; token: string } } {
  const cfg = YAML.parse(readFileSync(path, "utf8")) as {
    machine: { id: string; token: string };
    models?: unknown;
  };
  cfg.models = {
    allowed_dirs: [dirname(testModelPath())],
    ...(allowPrivateSources ? { allow_private_sources: allowPrivateSources } : {}),
  };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  return cfg;
}

/** The processes `parentPid` started itself (pid and command line), as `ps` lists them. */
export function childProcesses(parentPid: number): { pid: number; cmd: string }[] {
  const out = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" });
  return out
    .trim()
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, ppid]) => Number(ppid) === parentPid)
    .map(([pid, , ...args]) => ({ pid: Number(pid), cmd: args.join(" ") }));
}

/**
 * Whether a command line runs the agent's builtin engine: its source (engines/builtin/main.ts) or its
 * entry in the agent's bundle (builtin/main.js: from a clone, packages/agent/bin/clone-bundle.js).
 */
export function runsBuiltinEngine(cmd: string): boolean {
  return /(?:engines\/builtin\/main\.ts|\/builtin\/main\.js)(?:\s|$)/.test(cmd);
}

/** The builtin engine processes an agent runs (its children running the engine's entry). */
function builtinEngines(agentPid: number): { pid: number; cmd: string }[] {
  return childProcesses(agentPid).filter((p) => runsBuiltinEngine(p.cmd));
}

/** Pids of the agent's builtin engine processes. */
export function builtinEnginePids(agentPid: number): number[] {
  return builtinEngines(agentPid).map((e) => e.pid);
}

/** Running, not exited (a zombie its parent has not reaped yet counts as exited). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The port of an agent's builtin engine (on 127.0.0.1), read from its child's command line. */
export function builtinEnginePort(agentPid: number): number {
  for (const { cmd } of builtinEngines(agentPid)) {
    const port = /--port (\d+)/.exec(cmd)?.[1];
    if (port) return Number(port);
  }
  throw new Error("the agent's builtin engine is not running");
}

/**
 * The key the builtin engine listening on `port` takes requests with, read from its environment the
 * way a process of the same user can (/proc/PID/environ is readable by that user and root only).
 */
export function builtinEngineKey(port: number): string {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  for (const line of out.trim().split("\n")) {
    const [pid, ...args] = line.trim().split(/\s+/);
    const cmd = args.join(" ");
    if (!runsBuiltinEngine(cmd) || !cmd.includes(`--port ${port} `)) continue;
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const key = env.find((e) => e.startsWith("BETA9_ENGINE_API_KEY="));
    if (key) return key.slice("BETA9_ENGINE_API_KEY=".length);
  }
  throw new Error(`no builtin engine with a key listens on port ${port}`);
}

/** The builtin engine's own counters for one model (requests in flight, generations cancelled). */
export async function builtinEngineModel(
  port: number,
  name: string,
): Promise<{ active: number; cancelled: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/admin/models`, {
    headers: { authorization: `Bearer ${builtinEngineKey(port)}` },
  });
  const { models } = (await res.json()) as { models: { name: string; active: number; cancelled: number }[] };
  const model = models.find((m) => m.name === name);
  if (!model) throw new Error(`the builtin engine does not serve ${name}`);
  return model;
}
