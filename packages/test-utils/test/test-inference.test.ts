import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  BIN,
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  tempDir,
  testModelPath,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { noProxy, runCommand } from "./run-command.ts";

/*
 * scripts/test-inference, the fork's inference test, run as a user runs it against a real b9gateway
 * and a real b9agent (builtin engine, SmolLM2): it finds the agent through its config file and the
 * gateway through BETA9_INFERENCE_HOST/PORT and BETA9_API_KEY.
 */

const SCRIPT = resolve(import.meta.dirname, "../../../scripts/test-inference");
const MODEL = "smollm2-135m";
const STEPS = [
  "[0/6] Sending start-inference command to agent...",
  "[1/6] Testing health endpoint...",
  "[2/6] Checking model availability...",
  "[3/6] Testing chat via curl...",
  "[4/6] Testing Python SDK...",
  "[5/6] Testing latency (3 requests)...",
  "[6/6] Stopping inference server...",
];
let gw: GatewayProc;
let worker: ModelAgent;
let key: string;

beforeAll(async () => {
  testPython();
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw);
  // The agent listens on a free port; write it where the script looks for it, as `b9agent init
  // --control-port` would have.
  const config = YAML.parse(readFileSync(worker.agent.configPath, "utf8")) as { control: { port: number } };
  config.control.port = Number(new URL(worker.agent.controlUrl).port);
  writeFileSync(worker.agent.configPath, YAML.stringify(config), { mode: 0o600 });
  key = (
    await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "test-inference", scopes: ["inference"] })
  ).body.key;
}, 120_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

function testInference(env: NodeJS.ProcessEnv, args: string[] = []) {
  return runCommand(SCRIPT, args, {
    timeoutMs: 240_000,
    env: {
      HOME: tempDir("b9-home-"), // never the ~/.b9agent of whoever runs the tests
      B9AGENT_CONFIG: worker.agent.configPath,
      BETA9_INFERENCE_HOST: "127.0.0.1",
      BETA9_INFERENCE_PORT: String(gw.port),
      BETA9_API_KEY: key,
      BETA9_PYTHON: testPython(),
      TEST_MODEL: MODEL,
      PYTHONDONTWRITEBYTECODE: "1",
      NO_PROXY: noProxy(),
      ...env,
    },
  });
}

/**
 * As the fork's users run it: TEST_MODEL and BETA9_INFERENCE_HOST only; the key from `b9 login`'s file
 * under HOME (when `login`) or the agent's machine.token, the python from the repository's .cache/venv.
 */
async function forkWay(host: string, opts: { login: boolean; model?: string }) {
  const home = tempDir("b9-home-");
  if (opts.login) {
    const login = await runCommand(
      process.execPath,
      [BIN.cli, "login", "--gateway", gw.url, "--api-key", key],
      { timeoutMs: 30_000, env: { HOME: home, BETA9_CLI_CONFIG: undefined, NO_PROXY: noProxy() } },
    );
    expect(login.code, login.stderr).toBe(0);
  }
  return runCommand(SCRIPT, [], {
    timeoutMs: 240_000,
    env: {
      HOME: home,
      B9AGENT_CONFIG: worker.agent.configPath,
      TEST_MODEL: opts.model ?? MODEL,
      BETA9_INFERENCE_HOST: host,
      // Nothing else from the environment that runs the tests.
      BETA9_INFERENCE_PORT: undefined,
      BETA9_API_KEY: undefined,
      BETA9_CLI_CONFIG: undefined,
      BETA9_PYTHON: undefined,
      B9AGENT_TOKEN: undefined,
      B9AGENT_CONTROL_URL: undefined,
      TEST_MODEL_SOURCE: undefined,
      PYTHONDONTWRITEBYTECODE: "1",
      NO_PROXY: noProxy(),
    },
  });
}

function expectAllSteps(run: { code: number | null; stdout: string; stderr: string }) {
  const out = `${run.stdout}\n${run.stderr}`;
  expect(run.code, out).toBe(0);
  for (const step of STEPS) expect(run.stdout, out).toContain(`${step.padEnd(50)}✓`);
  expect(run.stdout).not.toContain("✗");
}

/** The models the agent serves now, from its control API. */
async function served(): Promise<string[]> {
  const res = await worker.control("GET", "/inference/status");
  return ((await res.json()) as { models: { name: string }[] }).models.map((m) => m.name);
}

describe("scripts/test-inference against the real gateway and agent", () => {
  it("passes all seven steps, ✓ each, and leaves the model stopped", async () => {
    const run = await testInference({ TEST_MODEL_SOURCE: testModelPath() });
    const out = `${run.stdout}\n${run.stderr}`;
    expect(run.code, out).toBe(0);
    for (const step of STEPS) expect(run.stdout, out).toContain(`${step.padEnd(50)}✓`);
    expect(run.stdout).toMatch(/\[0\/6\].*✓ {2}ready on builtin/);
    expect(run.stdout).toMatch(/\[5\/6\].*✓ {2}\d+ ms, \d+ ms, \d+ ms \(avg \d+ ms\)/);
    expect(run.stdout).toContain("All 7 steps passed.");
    expect(run.stdout).not.toContain("✗");
    expect(await served()).not.toContain(MODEL);
  }, 250_000);

  it("a model the agent does not have: ✗ at the first step, says how to pull it, exits 1", async () => {
    const run = await testInference({ TEST_MODEL: "not-there" });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain(`${STEPS[0]!.padEnd(50)}✗`);
    expect(run.stdout).not.toContain("[1/6]");
    expect(run.stderr).toContain("starting not-there: the agent at");
    expect(run.stderr).toContain("TEST_MODEL_SOURCE");
  }, 60_000);

  it("a wrong API key: ✗ at the model check, and the model it started is stopped again", async () => {
    // The agent through flags and B9AGENT_TOKEN instead of a config file.
    const run = await testInference(
      {
        B9AGENT_CONFIG: join(tempDir("b9-none-"), "config.yaml"),
        B9AGENT_TOKEN: worker.token,
        BETA9_API_KEY: "b9_not-a-key",
        TEST_MODEL_SOURCE: testModelPath(),
      },
      ["--control", worker.agent.controlUrl],
    );
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain(`${STEPS[0]!.padEnd(50)}✓`);
    expect(run.stdout).toContain(`${STEPS[1]!.padEnd(50)}✓`);
    expect(run.stdout).toContain(`${STEPS[2]!.padEnd(50)}✗`);
    expect(run.stderr).toMatch(/answered 401/);
    await waitFor(async () => !(await served()).includes(MODEL), { what: `${MODEL} to be stopped` });
  }, 120_000);

  it("no agent config and no flags: says where it looked and exits 2", async () => {
    const run = await testInference({ B9AGENT_CONFIG: join(tempDir("b9-none-"), "config.yaml") });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("no agent config at");
    expect(run.stderr).toContain("b9agent init");
  });
});

describe("scripts/test-inference the fork's way: TEST_MODEL and BETA9_INFERENCE_HOST only", () => {
  beforeAll(async () => {
    // The model is on the machine already, as after `b9agent` pulled it once.
    const pulled = await worker.control("POST", "/inference/pull", { model: MODEL, source: testModelPath() });
    expect(pulled.status).toBe(201);
  }, 120_000);

  it("HOST: the gateway's port and the key come from b9 login", async () => {
    const run = await forkWay("127.0.0.1", { login: true });
    expectAllSteps(run);
    expect(run.stdout).toContain(`gateway ${gw.url}`);
  }, 250_000);

  it("HOST:PORT of the agent itself, as the fork's users named a worker: the key is its machine.token", async () => {
    const run = await forkWay(new URL(worker.agent.controlUrl).host, { login: false });
    expectAllSteps(run);
    expect(run.stdout).toContain(`gateway ${worker.agent.controlUrl}`);
  }, 250_000);

  it("a URL, with b9 login's key", async () => {
    const run = await forkWay(gw.url, { login: true });
    expectAllSteps(run);
  }, 250_000);

  it("no b9 login and a gateway's address: asks for a key, and never shows the gateway the machine.token", async () => {
    const run = await forkWay(gw.url, { login: false });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain(`${STEPS[2]!.padEnd(50)}✗`);
    expect(run.stderr).toContain("no API key: set BETA9_API_KEY, or run b9 login");
    expect(await served()).not.toContain(MODEL);
  }, 120_000);

  it("a model that is not there: ✗ at the first step, naming the models that are", async () => {
    const run = await forkWay("127.0.0.1", { login: true, model: "llama3.2" });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain(`${STEPS[0]!.padEnd(50)}✗`);
    expect(run.stderr).toContain(`this machine has: ${MODEL}`);
    expect(run.stderr).toContain(`the gateway at ${gw.url} lists:`);
  }, 60_000);
});
