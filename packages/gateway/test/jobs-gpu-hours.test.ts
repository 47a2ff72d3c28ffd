import { chmodSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsClient } from "./jobs-client.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * A workspace's GPU-hours in any 24 hours, on a real gateway and agent. The agent's machine reports an
 * H100: its nvidia-smi answers what a real H100 answered (the agent's recorded hardware), so GPU jobs
 * are placed on it and run (natively: no device nodes are needed to sleep).
 */
let gw: GatewayProc;
let agent: AgentProc;
let key: string;

const { submit, show, until } = jobsClient(
  () => gw,
  () => key,
);

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const bin = tempDir("b9-fake-gpu-");
  const recorded = resolve(import.meta.dirname, "../../agent/testdata/hardware/nvidia-smi-h100-idle.csv");
  writeFileSync(join(bin, "nvidia-smi"), `#!/bin/sh\ncat "${recorded}"\n`);
  chmodSync(join(bin, "nvidia-smi"), 0o755);
  // The hardware joins with the machine (init) and comes with every connection (run).
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  try {
    agent = await startAgent(await initAgent(gw, { name: "h100" }), {
      env: { B9AGENT_JOB_RUNNER: "native" },
    });
  } finally {
    process.env.PATH = path;
  }
  // 0.0005 GPU-hours: 1.8 GPU-seconds in any 24 hours.
  expect(
    (await gw.api("POST", "/api/v1/workspaces", { name: "lab", gpu_hours_per_day: 0.0005 })).status,
  ).toBe(201);
  key = (
    await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "lab", scopes: ["jobs"], workspace: "lab" })
  ).body.key;
}, 60_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("a workspace's GPU-hours per day", () => {
  it("holds its GPU jobs once spent, lets its CPU jobs run, and releases them when the limit is raised", async () => {
    const submitted = await submit({ command: ["sleep", "2"], resources: { gpu: "nvidia" } });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const first = submitted.body;
    await until(first.id, (j) => j.state === "SUCCEEDED", { what: "the first GPU job to succeed" });
    const usage = (await gw.api<Json>("GET", `/api/v1/jobs/${first.id}/usage`, undefined, key)).body;
    expect(usage.runs[0].gpu_seconds).toBeGreaterThanOrEqual(1.8);

    const held = (await submit({ command: ["true"], resources: { gpu: "nvidia" } })).body;
    await until(
      held.id,
      (j) =>
        j.state === "QUEUED" &&
        /GPU-hours in the last 24 h, its limit \(gpu_hours_per_day 0.0005\)/.test(j.reason),
      { what: "the second GPU job to wait, saying why" },
    );
    const cpu = (await submit({ command: ["true"] })).body;
    await until(cpu.id, (j) => j.state === "SUCCEEDED", { what: "a CPU job to run meanwhile" });
    expect((await show(held.id)).state).toBe("QUEUED");

    const raised = await gw.api<Json>("POST", "/api/v1/workspaces/lab/limits", { gpu_hours_per_day: null });
    expect(raised.body.gpu_hours_per_day).toBeNull();
    await until(held.id, (j) => j.state === "SUCCEEDED", {
      what: "the held GPU job to run once the limit is lifted",
    });
  }, 60_000);
});
