import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { Store } from "@beta9/store";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { jobsClient } from "./jobs-client.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * Jobs run end to end: a real gateway assigns them to a real agent over its channel, follows each
 * run, keeps its logs and outputs, and tells the agent to stop a cancelled one. The agent runs them
 * with its native runner (the sandboxes are the agent's own tests).
 */
let gw: GatewayProc;
let key: string;
const agents: AgentProc[] = [];
const env = { B9AGENT_JOB_RUNNER: "native" };
/** A client that stops reading its logs is let go after this long. */
const STALL_S = 2;
const GATEWAY_ARGS = ["--client-stall-timeout", `${STALL_S}s`];

const { submit, show, get, until } = jobsClient(
  () => gw,
  () => key,
);

beforeAll(async () => {
  gw = await startGateway({ args: GATEWAY_ARGS });
  key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body.key;
  agents.push(await startAgent(await initAgent(gw, { name: "worker" }), { env }));
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.proc.stop();
  await gw?.proc.stop();
});

describe("jobs on a real agent", () => {
  it("runs a command: its logs followed to the end, its exit code, its output with a matching sha256", async () => {
    const script = [
      "for i in 1 2 3; do echo line $i; done",
      "echo oops >&2",
      'printf "result 42" > "$B9_OUTPUT_DIR/result.txt"',
      "exit 3",
    ].join("\n");
    const made = await submit({ command: ["sh", "-c", script] });
    expect(made.status).toBe(201);
    const id = made.body.id as string;

    // Followed from the start while the job is queued, assigned and run: the stream ends with the job.
    const res = await get(`/api/v1/jobs/${id}/logs?follow=true`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/x-ndjson/);
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.line)).toEqual(expect.arrayContaining(["line 1", "line 2", "line 3", "oops"]));
    expect(lines.find((l) => l.line === "oops")).toMatchObject({ stream: "stderr", attempt: 1 });
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));

    const job = await until(id, ["FAILED"]);
    expect(job).toMatchObject({ state: "FAILED", exit_code: 3, machine_id: expect.any(String) });
    expect(job.events.map((e: Json) => e.state)).toEqual(
      expect.arrayContaining(["QUEUED", "ASSIGNED", "RUNNING", "FAILED"]),
    );

    // Resuming after line 2 gives the rest only.
    const rest = (await (await get(`/api/v1/jobs/${id}/logs?after=2`)).text()).trim().split("\n");
    expect(JSON.parse(rest[0]!).seq).toBe(3);

    const outputs = (await gw.api<Json>("GET", `/api/v1/jobs/${id}/outputs`, undefined, key)).body;
    const sha256 = createHash("sha256").update("result 42").digest("hex");
    expect(outputs).toEqual({ outputs: [{ name: "result.txt", sha256, size: 9 }] });
    const file = await get(`/api/v1/jobs/${id}/outputs/result.txt`);
    expect(file.status).toBe(200);
    expect(file.headers.get("x-beta9-sha256")).toBe(sha256);
    expect(Buffer.from(await file.arrayBuffer()).toString()).toBe("result 42");

    // What the run used, per machine, and the gateway's count of the transitions it made.
    const usage = (await gw.api<Json>("GET", `/api/v1/jobs/${id}/usage`, undefined, key)).body;
    expect(usage.runs).toEqual([
      expect.objectContaining({ attempt: 1, machine_id: job.machine_id, gpu_seconds: 0 }),
    ]);
    expect(usage.runs[0].cpu_seconds).toBeGreaterThanOrEqual(0);
    const metrics = await (
      await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.adminKey}` } })
    ).text();
    expect(metrics).toMatch(/beta9_job_transitions_total\{state="FAILED"\} [1-9]/);
  });

  it("retries only the ends its retry_on names: an exit code is not retried when only a lost machine is", async () => {
    const id = (await submit({ command: ["sh", "-c", "exit 4"], retries: 2, retry_on: ["lost"] })).body
      .id as string;
    await until(id, ["FAILED"]);
    // A job submitted after it has run to its end: a retry of the first would have been queued by then.
    const after = (await submit({ command: ["true"] })).body.id as string;
    await until(after, ["SUCCEEDED"]);
    const job = await show(id);
    expect(job).toMatchObject({ state: "FAILED", attempt: 1, exit_code: 4, ended: true });
    expect(job.events.map((e: Json) => e.state).at(-1)).toBe("FAILED");
    // Its logs, followed, end with it (no retry to wait for).
    expect((await get(`/api/v1/jobs/${id}/logs?follow=true`)).status).toBe(200);
    await (await get(`/api/v1/jobs/${id}/logs?follow=true`)).text();
    const bad = await submit({ command: ["true"], retry_on: ["sometimes"] });
    expect(bad.status).toBe(400);
  });

  it("retries a failed job while its retries allow, each attempt's lines kept once", async () => {
    const id = (await submit({ command: ["sh", "-c", "echo attempt; exit 1"], retries: 1 })).body
      .id as string;
    let job: Json;
    await waitFor(
      async () => {
        job = await show(id);
        return job.state === "FAILED" && job.attempt === 2;
      },
      { what: "the second attempt to fail" },
    );
    expect(job.events.map((e: Json) => e.state).filter((s: string) => s !== "PREPARING")).toEqual([
      "QUEUED",
      "ASSIGNED",
      "RUNNING",
      "FAILED",
      "QUEUED",
      "ASSIGNED",
      "RUNNING",
      "FAILED",
    ]);
    const lines = (await (await get(`/api/v1/jobs/${id}/logs`)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.seq, l.attempt, l.line])).toEqual([
      [1, 1, "attempt"],
      [2, 2, "attempt"],
    ]);
    const usage = (await gw.api<Json>("GET", `/api/v1/jobs/${id}/usage`, undefined, key)).body;
    expect(usage.runs.map((r: Json) => r.attempt)).toEqual([1, 2]);
  });

  it("keeps no output over the gateway's cap, and says so in the job's log", async () => {
    const script =
      'head -c 70000000 /dev/zero > "$B9_OUTPUT_DIR/huge.bin"; echo small > "$B9_OUTPUT_DIR/small.txt"';
    const id = (await submit({ command: ["sh", "-c", script] })).body.id as string;
    expect((await until(id, ["SUCCEEDED", "FAILED"])).state).toBe("SUCCEEDED");
    const outputs = (await gw.api<Json>("GET", `/api/v1/jobs/${id}/outputs`, undefined, key)).body.outputs;
    expect(outputs.map((o: Json) => o.name)).toEqual(["small.txt"]);
    const logs = await (await get(`/api/v1/jobs/${id}/logs`)).text();
    expect(logs).toMatch(
      /output huge\.bin was not kept: output huge\.bin is 70000000 bytes; the gateway keeps at most 67108864/,
    );
  });

  it("gives a job its inputs and ends SUCCEEDED with exit code 0", async () => {
    const up = await fetch(`${gw.url}/api/v1/jobs/inputs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" },
      body: "x,y\n1,2\n",
    });
    const { sha256 } = (await up.json()) as { sha256: string };
    const id = (
      await submit({ command: ["cat", "data/points.csv"], inputs: [{ name: "data/points.csv", sha256 }] })
    ).body.id as string;
    const job = await until(id, ["SUCCEEDED", "FAILED"]);
    expect(job).toMatchObject({ state: "SUCCEEDED", exit_code: 0 });
    const logs = (await (await get(`/api/v1/jobs/${id}/logs`)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).line);
    expect(logs).toEqual(["x,y", "1,2"]);
  });

  it("cancels a running job on its machine: it ends CANCELLED and its process is gone", async () => {
    const id = (await submit({ command: ["sh", "-c", "echo started; exec sleep 300"] })).body.id as string;
    await waitFor(async () => (await (await get(`/api/v1/jobs/${id}/logs`)).text()).includes("started"), {
      what: "the job to start",
    });
    const cancelled = await gw.api<Json>("POST", `/api/v1/jobs/${id}/cancel`, undefined, key);
    expect(cancelled.body.state).toBe("CANCELLED");
    // The agent was told: its run ends (and the gateway has it forget the run).
    await waitFor(
      async () => {
        const agentJobs = await fetch(`${agents[0]!.controlUrl}/jobs`, {
          headers: { authorization: `Bearer ${machineToken(agents[0]!)}` },
        });
        const list = (await agentJobs.json()) as { jobs: { job_id: string; state: string }[] };
        const run = list.jobs.find((j) => j.job_id === id);
        return run === undefined || run.state === "CANCELLED";
      },
      { what: "the agent to stop the run" },
    );
    expect((await show(id)).state).toBe("CANCELLED");
  });

  it("keeps a job that fits no machine now waiting with its reason, and runs it when a machine comes", async () => {
    const config = await initAgent(gw, { name: "berlin", country: "DE" });
    const id = (await submit({ command: ["echo", "guten tag"], countries: ["DE"] })).body.id as string;
    let waiting: Json;
    await waitFor(
      async () => {
        waiting = await show(id);
        return waiting.reason !== null;
      },
      { what: "the job's wait reason" },
    );
    expect(waiting).toMatchObject({ state: "QUEUED", reason: expect.stringMatching(/in DE|READY/) });
    agents.push(await startAgent(config, { env }));
    const done = await until(id, ["SUCCEEDED", "FAILED"]);
    expect(done.state).toBe("SUCCEEDED");
    expect(done.events.find((e: Json) => e.state === "ASSIGNED").machine_id).toBe(done.machine_id);
    const logs = await (await get(`/api/v1/jobs/${id}/logs`)).text();
    expect(logs).toContain("guten tag");
  });

  it("holds a workspace to its limit of jobs at once: the next waits with the reason, and runs when one ends", async () => {
    const limited = await gw.api<Json>("POST", "/api/v1/workspaces/default/limits", { max_jobs: 1 });
    expect(limited).toMatchObject({ status: 200, body: { max_jobs: 1 } });
    try {
      const first = (await submit({ command: ["sh", "-c", "echo one; exec sleep 300"] })).body.id as string;
      await until(first, ["RUNNING"]);
      const second = (await submit({ command: ["echo", "two"] })).body.id as string;
      let waiting: Json;
      await waitFor(
        async () => {
          waiting = await show(second);
          return waiting.reason !== null;
        },
        { what: "the second job's wait reason" },
      );
      expect(waiting).toMatchObject({ state: "QUEUED", reason: expect.stringMatching(/max_jobs 1/) });
      await gw.api("POST", `/api/v1/jobs/${first}/cancel`, undefined, key);
      expect((await until(second, ["SUCCEEDED", "FAILED"])).state).toBe("SUCCEEDED");
    } finally {
      await gw.api("POST", "/api/v1/workspaces/default/limits", { max_jobs: null });
    }
  });

  it("keeps a job's first and last lines of a long log, saying how many were dropped between", async () => {
    const id = (await submit({ command: ["seq", "1", "15000"] })).body.id as string;
    await until(id, ["SUCCEEDED"]);
    const lines = (await (await get(`/api/v1/jobs/${id}/logs`)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    // The gateway keeps the first 1,000 and the last 10,000 lines.
    expect(lines).toHaveLength(11_001);
    expect(lines[999]).toMatchObject({ seq: 1000, line: "1000" });
    expect(lines[1000]).toMatchObject({ seq: 5000, line: expect.stringMatching(/4000 lines dropped here/) });
    expect(lines[1001]).toMatchObject({ seq: 5001, line: "5001" });
    expect(lines.at(-1)).toMatchObject({ seq: 15000, line: "15000" });
  }, 60_000);

  it("holds nothing for log readers that stop reading, and lets them go after the stall timeout", async () => {
    // 11,000 lines of 1 KB: all kept (the first 1,000 and the last 10,000), 11 MB to send each reader.
    const script = `yes ${"x".repeat(1000)} | head -n 11000`;
    const id = (await submit({ command: ["sh", "-c", script] })).body.id as string;
    await until(id, ["SUCCEEDED"], { timeoutMs: 60_000 });
    const full = await (await get(`/api/v1/jobs/${id}/logs`)).text();
    expect(full.length).toBeGreaterThan(11_000_000);
    const pid = gw.proc.child.pid!;
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    const fds = () => readdirSync(`/proc/${pid}/fd`).length;
    const rss0 = rss();
    const fds0 = fds();

    // Twenty readers take the first bytes of the answer, then read nothing.
    const { hostname, port } = new URL(gw.url);
    const readers = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect(Number(port), hostname, () =>
              s.write(
                `GET /api/v1/jobs/${id}/logs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\n\r\n`,
              ),
            );
            s.once("data", () => {
              s.pause();
              resolve(s);
            });
            s.once("error", reject);
          }),
      ),
    );
    let peak = rss();
    try {
      // The gateway closes each stalled answer after the stall timeout: its sockets go back to what it had.
      await waitFor(
        () => {
          peak = Math.max(peak, rss());
          return fds() <= fds0;
        },
        { what: "the gateway to let the stalled readers go", timeoutMs: STALL_S * 1000 + 20_000 },
      );
    } finally {
      for (const r of readers) r.destroy();
    }
    // Had it buffered what they did not take, it would hold 20 × 11 MB.
    console.info(`log readers stalled: the gateway grew by ${Math.round((peak - rss0) / 1e6)} MB`);
    expect(peak - rss0).toBeLessThan(80 * 1024 * 1024);
  }, 90_000);

  it("loses nothing when the gateway restarts mid-run: the run is re-attached and its end and lines kept", async () => {
    const dir = tempDir("b9-job-gate-");
    const gate = join(dir, "go");
    const script = `echo before; while [ ! -e ${gate} ]; do sleep 0.1; done; echo after; exit 7`;
    const id = (await submit({ command: ["sh", "-c", script] })).body.id as string;
    await waitFor(async () => (await (await get(`/api/v1/jobs/${id}/logs`)).text()).includes("before"), {
      what: "the job to start",
    });
    await gw.proc.stop();
    // The run goes on, and ends, while no gateway follows it.
    writeFileSync(gate, "");
    gw = await startGateway({ dataDir: gw.dataDir, port: gw.port, args: GATEWAY_ARGS });
    const job = await until(id, ["FAILED", "SUCCEEDED", "LOST"], { timeoutMs: 60_000 });
    expect(job).toMatchObject({ state: "FAILED", exit_code: 7, attempt: 1 });
    const lines = (await (await get(`/api/v1/jobs/${id}/logs`)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.seq, l.line])).toEqual([
      [1, "before"],
      [2, "after"],
    ]);
  }, 90_000);

  it("a job claimed by a gateway that stopped before telling the machine is queued again, not lost", async () => {
    await gw.proc.stop();
    // What a gateway that stops between its claim and its call to the agent leaves in the store.
    const store = await Store.open({ kind: "sqlite", path: join(gw.dataDir, "beta9.db") });
    const id = "job_00000000000000aa";
    try {
      const ws = (await store.workspaces.byName("default"))!;
      const now = Date.now();
      await store.transaction(async (tx) => {
        await tx.jobs.create(
          {
            id,
            workspace_id: ws.id,
            key_id: null,
            idempotency_key: null,
            spec: JSON.stringify({ command: ["echo", "ran once"] }),
            priority: 0,
            max_retries: 0,
          },
          now,
        );
        await tx.jobs.transition(id, "ASSIGNED", { machineId: agentConfig(agents[0]!).machine.id }, now);
      });
    } finally {
      await store.close();
    }
    gw = await startGateway({ dataDir: gw.dataDir, port: gw.port, args: GATEWAY_ARGS });
    const job = await until(id, ["SUCCEEDED", "FAILED", "LOST"], { timeoutMs: 60_000 });
    expect(job).toMatchObject({ state: "SUCCEEDED", attempt: 1 });
    expect(job.events.map((e: Json) => e.state)).toContain("QUEUED");
    expect(job.events.find((e: Json) => e.reason?.includes("never got the assignment"))).toBeDefined();
  }, 90_000);

  it("an agent restarted mid-run says what became of the run, and the job ends with its reason", async () => {
    const id = (await submit({ command: ["sh", "-c", "echo up; exec sleep 300"] })).body.id as string;
    const running = await until(id, ["RUNNING"]);
    const i = agents.findIndex((a) => agentConfig(a).machine.id === running.machine_id);
    await agents[i]!.proc.stop("SIGKILL");
    agents[i] = await startAgent(agents[i]!.configPath, { env });
    const ended = await until(id, ["FAILED", "LOST", "SUCCEEDED", "CANCELLED"], { timeoutMs: 60_000 });
    expect(ended).toMatchObject({ state: "FAILED", reason: expect.stringMatching(/agent restarted/) });
  }, 90_000);
});

const agentConfig = (agent: AgentProc): Json => YAML.parse(readFileSync(agent.configPath, "utf8"));
const machineToken = (agent: AgentProc): string => agentConfig(agent).machine.token;
