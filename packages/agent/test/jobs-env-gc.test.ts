import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { environmentKey } from "../src/jobs/python-env.ts";
import { assignment, finalState, logLines, read, type Stream } from "./jobs-helpers.ts";

/*
 * A real agent whose owner keeps jobs' Python environments to almost nothing (jobs.max_env_bytes: 1):
 * every environment no run holds goes as soon as another is built, and one a running job holds stays
 * until that job is done with it. Environments are built by uv offline (package_index: none), each
 * from a requirements file with nothing but a comment.
 */
let gw: GatewayProc;
let agent: AgentProc;
let token: string;
let envs: string;
const spec = (name: string) => ({ requirements: `# ${name}\n` });
const key = (name: string) => environmentKey(spec(name));
const kept = () => readdirSync(envs).filter((n) => /^[0-9a-f]{32}$/.test(n));

async function submit(jobId: string, name: string, command: string[]): Promise<Stream> {
  const res = await fetch(`${agent.controlUrl}/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(assignment(jobId, { command, environment: spec(name) })),
  });
  return read(res);
}

beforeAll(async () => {
  gw = await startGateway();
  const path = await initAgent(gw, { name: "env-gc" });
  const cfg = YAML.parse(readFileSync(path, "utf8")) as { machine: { token: string }; jobs?: unknown };
  cfg.jobs = { max_env_bytes: 1, package_index: "none" };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  token = cfg.machine.token;
  envs = join(dirname(path), "job-envs");
  agent = await startAgent(path, {
    env: { B9AGENT_JOB_RUNNER: "native", PATH: `${dirname(testPython())}:${process.env.PATH}` },
  });
}, 60_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("job environments over the owner's cap", () => {
  it("the least recently used go once another is built; never one a running job holds", async () => {
    const flag = join(tempDir("b9-flag-"), "go");
    // Job A runs in its environment until the flag appears, then runs Python from it again.
    const wait = `import os, time\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.1)\nprint("still here")`;
    const a = await submit("job-env-a", "a", ["python", "-c", wait]);
    expect(a.status).toBe(200);
    await waitFor(() => a.events.some((e) => e.type === "state" && e.state === "RUNNING"), {
      what: "job A to run",
    });
    const b = await submit("job-env-b", "b", ["python", "-c", "print('b')"]);
    expect(finalState(await b.done).state).toBe("SUCCEEDED");
    const c = await submit("job-env-c", "c", ["python", "-c", "print('c')"]);
    expect(finalState(await c.done).state).toBe("SUCCEEDED");
    // B's was let go when B ended and goes once C's is built; A's is held by A, which still runs.
    await waitFor(() => !kept().includes(key("b")), { what: "B's environment to go" });
    expect(kept()).toContain(key("a"));
    writeFileSync(flag, "");
    const endA = await a.done;
    expect(finalState(endA).state).toBe("SUCCEEDED");
    expect(logLines(endA)).toContain("still here");
    // Done with, A's goes when the next one is built.
    const d = await submit("job-env-d", "d", ["python", "-c", "print('d')"]);
    expect(finalState(await d.done).state).toBe("SUCCEEDED");
    await waitFor(() => !kept().includes(key("a")), { what: "A's environment to go" });
    expect(readdirSync(envs).filter((n) => n.startsWith(".removing-"))).toEqual([]);
  }, 180_000);
});
