import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type AgentProc,
  BIN,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/program.ts";
import { b9, captureIO } from "./harness.ts";

/*
 * b9 job run followed to its end on a real gateway and a real agent (its native runner): the job's
 * stdout and stderr where a person expects them, its exit code as b9's, inputs uploaded, outputs
 * downloaded and checked, Ctrl+C detaching.
 */
let gw: GatewayProc;
let agent: AgentProc;
let env: Record<string, string>;
const dir = tempDir("b9-cli-job-run-");

beforeAll(async () => {
  gw = await startGateway();
  const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
    .key;
  env = { BETA9_GATEWAY: gw.url, BETA9_API_KEY: key, BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json" };
  agent = await startAgent(await initAgent(gw, { name: "worker" }), {
    env: { B9AGENT_JOB_RUNNER: "native" },
  });
}, 60_000);
afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("b9 job run on a real agent", () => {
  it("prints the job's output to the end and exits 0", async () => {
    const r = await b9(
      env,
      "job",
      "run",
      "--",
      "python3",
      "-c",
      "import sys; print(42); print('careful', file=sys.stderr)",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("42\n");
    expect(r.stderr).toMatch(/^Job job_[a-f0-9]{16} queued; following its output \(Ctrl\+C detaches\)\.\n/);
    expect(r.stderr).toContain("careful\n");
    expect(r.stderr).toMatch(/Job job_[a-f0-9]{16} succeeded\.\n$/);
  }, 60_000);

  it("exits with the command's exit code and says why it failed", async () => {
    const r = await b9(env, "job", "run", "--", "python3", "-c", "import sys; print('partial'); sys.exit(3)");
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("partial\n");
    expect(r.stderr).toMatch(/error: job job_[a-f0-9]{16} ended FAILED: .*3/);
  }, 60_000);

  it("follows a job through its retries, announcing each attempt, and exits with the last one's code", async () => {
    const r = await b9(env, "job", "run", "--retries", "1", "--", "sh", "-c", "echo try; exit 2");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("try\ntry\n");
    expect(r.stderr).toContain("--- attempt 2 ---\n");
    const id = /Job (job_[a-f0-9]{16}) queued/.exec(r.stderr)?.[1] as string;
    const shown = await b9(env, "job", "show", id);
    expect(shown.stdout).toMatch(/^Attempt:\s+2\/2 \(retries: 1\)$/m);
  }, 60_000);

  it("--json prints each line, then the ended job, one JSON object a line", async () => {
    const r = await b9(env, "job", "run", "--json", "--", "sh", "-c", "echo one; echo two");
    expect(r.code, r.stderr).toBe(0);
    const objects = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(objects.slice(0, 2)).toMatchObject([
      { seq: 1, stream: "stdout", line: "one", attempt: 1 },
      { seq: 2, stream: "stdout", line: "two", attempt: 1 },
    ]);
    expect(objects.at(-1)).toMatchObject({ state: "SUCCEEDED", exit_code: 0 });
  }, 60_000);

  it("uploads --input files, and downloads the outputs checked against their sha256", async () => {
    const data = join(dir, "numbers.txt");
    writeFileSync(data, "1\n2\n3\n");
    const script =
      "import os; n = sum(int(l) for l in open('numbers.txt')); open(os.path.join(os.environ['B9_OUTPUT_DIR'], 'sum.txt'), 'w').write(str(n)); print(n)";
    const r = await b9(env, "job", "run", "--input", data, "--", "python3", "-c", script);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("6\n");
    const id = /Job (job_[a-f0-9]{16}) queued/.exec(r.stderr)?.[1] as string;

    const listed = await b9(env, "job", "outputs", id);
    const sha256 = createHash("sha256").update("6").digest("hex");
    expect(listed.stdout).toMatch(new RegExp(`^NAME\\s+SIZE\\s+SHA256\\nsum.txt\\s+1 B\\s+${sha256}\\n$`));

    const into = join(dir, "downloaded");
    const got = await b9(env, "job", "outputs", id, "--download", into);
    expect(got).toMatchObject({
      code: 0,
      stdout: `Downloaded 1 output of job ${id} to ${into} (1 B), each matching its sha256.\n`,
    });
    expect(readFileSync(join(into, "sum.txt"), "utf8")).toBe("6");

    const logs = await b9(env, "job", "logs", id);
    expect(logs.stdout).toBe("6\n");
  }, 60_000);

  it("detaches on Ctrl+C, saying how to follow again, and the job keeps running", async () => {
    const io = captureIO(env);
    let interrupt: (() => void) | undefined;
    io.onInterrupt = (handler) => {
      interrupt = handler;
      return () => {
        interrupt = undefined;
      };
    };
    const running = run(
      ["job", "run", "--", "python3", "-c", "import time; print('started', flush=True); time.sleep(120)"],
      io,
    );
    await waitFor(() => io.out.join("").includes("started"), {
      what: "the job's first line",
      timeoutMs: 30_000,
    });
    interrupt?.();
    expect(await running).toBe(130);
    const id = /Job (job_[a-f0-9]{16}) queued/.exec(io.err.join(""))?.[1] as string;
    expect(io.err.join("")).toContain(
      `Detached; job ${id} keeps running. Follow it again with b9 job logs ${id} -f --after 1, or stop it with b9 job cancel ${id}.`,
    );
    const shown = JSON.parse((await b9(env, "job", "show", id, "--json")).stdout);
    expect(shown.state).toBe("RUNNING");
    const cancelled = await b9(env, "job", "cancel", id);
    expect(cancelled.stdout).toBe(`Job ${id} cancelled (it was RUNNING); state CANCELLED.\n`);
    // Following a job that ended prints its lines and says how it ended.
    const followed = await b9(env, "job", "logs", id, "-f");
    expect(followed).toMatchObject({ code: 0, stdout: "started\n" });
    expect(followed.stderr).toMatch(new RegExp(`Job ${id} ended CANCELLED`));
  }, 60_000);

  it("the real b9 binary detaches on SIGINT at once, exiting 130", async () => {
    const child = spawn(
      process.execPath,
      [BIN.cli, "job", "run", "--", "python3", "-c", "import time; print('up', flush=True); time.sleep(120)"],
      {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await waitFor(() => out.includes("up"), { what: "the job's first line", timeoutMs: 30_000 });
    const sent = Date.now();
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(Date.now() - sent).toBeLessThan(2000);
    const id = /Job (job_[a-f0-9]{16}) queued/.exec(err)?.[1] as string;
    expect(err).toContain(`Detached; job ${id} keeps running.`);
    expect((await b9(env, "job", "cancel", id)).code).toBe(0);
  }, 60_000);
});
