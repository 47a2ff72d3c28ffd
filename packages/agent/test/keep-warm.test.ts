import { readFileSync, writeFileSync } from "node:fs";
import {
  type AgentProc,
  allowTestModel,
  builtinEnginePids,
  type GatewayProc,
  initAgent,
  processAlive,
  startAgent,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * inference.keep_engine_warm on a real agent with the builtin engine and the real SmolLM2 GGUF: the
 * engine's process runs before any model, serves the model without a new process, outlives its last
 * model, and still dies with the agent.
 */

let gw: GatewayProc;
let agent: AgentProc;
let token: string;

async function control<T = Record<string, unknown>>(method: string, path: string, body?: unknown) {
  const res = await fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

beforeAll(async () => {
  gw = await startGateway();
  const path = await initAgent(gw, { name: "warm-box" });
  token = allowTestModel(path).machine.token;
  // The config as `b9agent init` writes it, the test helper's setting taken out: the product default.
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  delete cfg.inference.keep_engine_warm;
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  agent = await startAgent(path);
}, 120_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("inference.keep_engine_warm (on by default)", () => {
  let warm: number;

  it("runs the builtin engine before any model is started, and says so", async () => {
    await waitFor(() => agent.proc.lines.some((l) => l.includes("builtin engine kept warm")), {
      what: "the agent's kept-warm line",
      timeoutMs: 60_000,
    });
    const pids = builtinEnginePids(agent.proc.child.pid!);
    expect(pids.length).toBe(1);
    warm = pids[0]!;
    const status = await control<{ status: string; models: unknown[] }>("GET", "/inference/status");
    expect(status.body).toMatchObject({ status: "stopped", models: [] });
  });

  it("serves a model on the warm process, and keeps that process after the model stops", async () => {
    const pulled = await control("POST", "/inference/pull", { model: "smollm2", source: testModelPath() });
    expect(pulled.status).toBe(201);
    const started = await control("POST", "/inference/start", { model: "smollm2", context_size: 2048 });
    expect(started.body).toMatchObject({ status: "running" });
    expect(builtinEnginePids(agent.proc.child.pid!)).toEqual([warm]);

    const stopped = await control("POST", "/inference/stop", { model: "smollm2" });
    expect(stopped.body).toMatchObject({ status: "stopped", models: [] });
    expect(builtinEnginePids(agent.proc.child.pid!)).toEqual([warm]);

    const again = await control("POST", "/inference/start", { model: "smollm2", context_size: 2048 });
    expect(again.body).toMatchObject({ status: "running" });
    expect(builtinEnginePids(agent.proc.child.pid!)).toEqual([warm]);
  });

  it("leaves no engine behind when the agent is SIGKILLed", async () => {
    agent.proc.child.kill("SIGKILL");
    await waitFor(() => !processAlive(warm), { what: "the warm engine to die", timeoutMs: 10_000 });
  });
});
