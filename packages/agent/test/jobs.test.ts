import { readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignment, finalState, logLines, read, submit } from "./jobs-helpers.ts";

/*
 * Jobs on a real agent with the native runner (a plain child in the job's directory), called as
 * the gateway calls them: POST /jobs with an assignment, the run's events streamed back as NDJSON.
 * Local callers need the machine credential, as for the rest of the control API.
 */

let gw: GatewayProc;
let worker: ModelAgent;
/** A package index that accepts connections and never answers: uv waits on it until stopped. */
let silentIndex: Server;
let indexAsked = 0;

beforeAll(async () => {
  silentIndex = createServer(() => {
    indexAsked++;
  });
  await new Promise<void>((resolve) => silentIndex.listen(0, "127.0.0.1", resolve));
  const port = (silentIndex.address() as AddressInfo).port;
  gw = await startGateway();
  worker = await startModelAgent(gw, {
    name: "jobs-native",
    env: {
      B9AGENT_JOB_RUNNER: "native",
      PATH: `${dirname(testPython())}:${process.env.PATH}`,
      UV_DEFAULT_INDEX: `http://127.0.0.1:${port}/simple`,
    },
  });
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
  silentIndex?.closeAllConnections();
  silentIndex?.close();
});

describe("jobs with the native runner", () => {
  it("runs a command to its end: numbered, timestamped log lines, its exit code, the job's environment", async () => {
    const run = await submit(
      worker,
      assignment(
        "job-native-1",
        {
          command: [
            "sh",
            "-c",
            'echo "hello from $B9_JOB_ID"; echo "home=$HOME out=$B9_OUTPUT_DIR gpu=[$CUDA_VISIBLE_DEVICES] greeting=$GREETING"; cat data/in.txt; echo oops >&2; exit 3',
          ],
          env: { GREETING: "hi" },
        },
        { inputs: { "data/in.txt": "an input\n" } },
      ),
    );
    expect(run.status).toBe(200);
    const events = await run.done;
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "state").map((e) => e.state)).toEqual([
      "PREPARING",
      "RUNNING",
      "FAILED",
    ]);
    const lines = logLines(events);
    expect(lines).toContain("hello from job-native-1");
    expect(lines).toContain("an input");
    const env = lines.find((l) => l.startsWith("home="));
    expect(env).toMatch(
      /^home=\S+\/jobs\/job-native-1\/work out=\S+\/jobs\/job-native-1\/work\/out gpu=\[\] greeting=hi$/,
    );
    const oops = events.find((e) => e.type === "log" && e.line === "oops");
    expect(oops).toMatchObject({ stream: "stderr" });
    expect(typeof oops?.at).toBe("number");
    expect(finalState(events)).toMatchObject({ state: "FAILED", exit_code: 3, reason: "exit code 3" });

    // The run is kept: listed, and its events replayed from any point.
    const list = (await (await worker.control("GET", "/jobs")).json()) as { jobs: { job_id: string }[] };
    expect(list.jobs).toContainEqual({
      job_id: "job-native-1",
      attempt: 1,
      state: "FAILED",
      seq: events.length,
    });
    const replay = await read(await worker.control("GET", "/jobs/job-native-1/events?after=2"));
    expect(replay.error).toBeUndefined();
    expect(await replay.done).toEqual(events.slice(2));
  });

  it("ends SUCCEEDED with exit code 0", async () => {
    const events = await (await submit(worker, assignment("job-native-ok", { command: ["true"] }))).done;
    expect(finalState(events)).toMatchObject({ state: "SUCCEEDED", exit_code: 0 });
  });

  it("says which command does not exist", async () => {
    const events = await (await submit(worker, assignment("job-no-cmd", { command: ["no-such-program-b9"] })))
      .done;
    expect(finalState(events)).toMatchObject({
      state: "FAILED",
      reason: "command not found: no-such-program-b9",
    });
  });

  it("refuses an input that does not match its sha256 before anything runs", async () => {
    const a = assignment("job-bad-input", { command: ["touch", "ran"] }, { inputs: { "x.txt": "real" } });
    a.inputs[0]!.data_base64 = Buffer.from("tampered").toString("base64");
    const run = await submit(worker, a);
    expect(run.status).toBe(400);
    expect(run.error?.message).toContain("x.txt does not match its sha256");
    expect((await worker.control("GET", "/jobs/job-bad-input/events")).status).toBe(404);
  });

  it("refuses a second run of a job that is running (409)", async () => {
    const first = await submit(worker, assignment("job-twice", { command: ["sleep", "30"] }));
    const second = await submit(worker, assignment("job-twice", { command: ["true"] }));
    expect(second.status).toBe(409);
    expect(second.error?.code).toBe("conflict");
    const cancelled = await worker.control("POST", "/jobs/job-twice/cancel");
    expect(await cancelled.json()).toEqual({ job_id: "job-twice", state: "CANCELLED" });
    expect(finalState(await first.done).state).toBe("CANCELLED");
  });

  it("two assignments of one job at once: one runs, the other is refused (409)", async () => {
    // Inputs make the agent write files before the run is listed: the window a second one could use.
    const inputs = Object.fromEntries([1, 2, 3, 4].map((i) => [`in${i}.bin`, "x".repeat(4 * 1024 * 1024)]));
    const a = assignment("job-at-once", { command: ["sleep", "30"] }, { inputs });
    const runs = await Promise.all([submit(worker, a), submit(worker, a)]);
    expect(runs.map((r) => r.status).sort()).toEqual([200, 409]);
    await worker.control("POST", "/jobs/job-at-once/cancel");
    expect(finalState(await runs.find((r) => r.status === 200)!.done).state).toBe("CANCELLED");
  }, 30_000);

  it("cuts a 10 MB line, saying how much was cut", async () => {
    const events = await (
      await submit(
        worker,
        assignment("job-long-line", {
          command: ["sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' x; echo; echo after"],
        }),
      )
    ).done;
    const lines = logLines(events);
    expect(lines).toHaveLength(2);
    expect(Buffer.byteLength(lines[0]!)).toBeLessThanOrEqual(64 * 1024);
    // All 10 MiB accounted for: what was kept, and the rest said in the note.
    const kept = lines[0]!.indexOf("…");
    expect(lines[0]!.slice(0, kept)).toMatch(/^x+$/);
    expect(lines[0]!.slice(kept)).toBe(`… [line cut: ${10 * 1024 * 1024 - kept} more characters dropped]`);
    expect(lines[1]).toBe("after");
  });

  it("a job printing 40 MB as fast as it can: the agent answers meanwhile, and keeps a bounded log with a count of what it dropped", async () => {
    const run = await submit(
      worker,
      assignment("job-flood", {
        // 400,000 lines of 100 bytes, as fast as the pipe takes them.
        command: [
          "sh",
          "-c",
          "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 400000",
        ],
      }),
    );
    let slowest = 0;
    const ended = () =>
      run.events.some((e) => e.type === "state" && (e.state === "SUCCEEDED" || e.state === "FAILED"));
    while (!ended()) {
      const asked = performance.now();
      expect((await fetch(`${worker.agent.controlUrl}/health`)).status).toBe(200);
      slowest = Math.max(slowest, performance.now() - asked);
    }
    const events = await run.done;
    console.log(`flood: slowest /health answer during it ${slowest.toFixed(0)} ms`);
    expect(slowest).toBeLessThan(2_000);
    expect(finalState(events)).toMatchObject({ state: "SUCCEEDED" });
    const lines = logLines(events);
    expect(lines.length).toBe(100_001);
    expect(lines.at(-1)).toBe(
      "[b9] 300000 log lines were dropped: the agent keeps at most 100000 lines or 67108864 bytes per run",
    );
  }, 120_000);

  it("counts running and total jobs in /status", async () => {
    const before = (await (await worker.control("GET", "/status")).json()) as {
      running_jobs: number;
      total_jobs: number;
    };
    const run = await submit(worker, assignment("job-counted", { command: ["sleep", "30"] }));
    await waitFor(
      async () => {
        const s = (await (await worker.control("GET", "/status")).json()) as {
          running_jobs: number;
          total_jobs: number;
        };
        return s.running_jobs === before.running_jobs + 1 && s.total_jobs === before.total_jobs + 1;
      },
      { what: "/status to count the running job" },
    );
    await worker.control("POST", "/jobs/job-counted/cancel");
    await run.done;
    expect(await (await worker.control("DELETE", "/jobs/job-counted")).status).toBe(204);
    const after = (await (await worker.control("GET", "/status")).json()) as {
      running_jobs: number;
      total_jobs: number;
    };
    expect(after).toMatchObject({ running_jobs: before.running_jobs, total_jobs: before.total_jobs });
  }, 30_000);

  it("outputs over the cap together fail the run, and none of them is announced", async () => {
    const run = await submit(
      worker,
      assignment("job-big-outputs", {
        // A sparse 2 GiB file: over the 1 GiB cap without writing 2 GiB.
        command: [
          "sh",
          "-c",
          'echo small > "$B9_OUTPUT_DIR/small.txt" && truncate -s 2G "$B9_OUTPUT_DIR/big.bin"',
        ],
      }),
    );
    const events = await run.done;
    expect(finalState(events)).toMatchObject({
      state: "FAILED",
      exit_code: 0,
      reason: "the job's outputs are 2048 MiB, over the cap of 1 GiB: none were kept",
    });
    expect(events.filter((e) => e.type === "output")).toEqual([]);
  });

  it("cancel while its Python environment is being built: the build stops, nothing of it is kept", async () => {
    const run = await submit(
      worker,
      assignment("job-cancel-build", { command: ["python", "-V"], environment: { packages: ["six"] } }),
    );
    await waitFor(() => indexAsked > 0, { what: "uv to ask the package index" });
    const asked = performance.now();
    expect(await (await worker.control("POST", "/jobs/job-cancel-build/cancel")).json()).toEqual({
      job_id: "job-cancel-build",
      state: "CANCELLED",
    });
    expect(performance.now() - asked).toBeLessThan(8_000);
    const events = await run.done;
    expect(events.filter((e) => e.type === "state").map((e) => e.state)).toEqual(["PREPARING", "CANCELLED"]);
    const envs = join(dirname(worker.agent.configPath), "job-envs");
    expect(readdirSync(envs).filter((n) => n !== ".uv-cache")).toEqual([]);
  }, 30_000);

  it("is closed to a local caller without the machine credential", async () => {
    const res = await fetch(`${worker.agent.controlUrl}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(assignment("job-anon", { command: ["true"] })),
    });
    expect(res.status).toBe(401);
    expect((await fetch(`${worker.agent.controlUrl}/jobs`)).status).toBe(401);
  });

  it("an agent stopped (SIGTERM) under a running job ends the run FAILED, which the gateway may retry", async () => {
    const run = await submit(worker, assignment("job-agent-stops", { command: ["sleep", "60"] }));
    await waitFor(() => run.events.some((e) => e.type === "state" && e.state === "RUNNING"), {
      what: "the job to run",
    });
    await worker.agent.proc.stop("SIGTERM");
    expect(finalState(await run.done)).toMatchObject({
      state: "FAILED",
      reason: "the agent was stopped while it ran",
    });
  }, 30_000);
});
