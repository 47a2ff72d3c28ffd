import { closeSync, ftruncateSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type GatewayProc,
  inferenceKey,
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
 * b9 job against the real gateway: what it refuses before sending anything, and a detached job
 * listed, shown and cancelled. A machine joined once and went away, so the gateway takes jobs it
 * could run and they stay QUEUED. (Following a job to its end on a live machine: job-run.e2e.test.ts.)
 */
let gw: GatewayProc;
let env: Record<string, string>;
const dir = tempDir("b9-cli-job-");

beforeAll(async () => {
  gw = await startGateway();
  const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
    .key;
  env = { BETA9_GATEWAY: gw.url, BETA9_API_KEY: key, BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json" };
  const agent = await startAgent(await initAgent(gw, { name: "gone" }));
  await agent.proc.stop();
}, 60_000);
afterAll(async () => {
  await gw?.proc.stop();
});

const jobCount = async () =>
  JSON.parse((await b9(env, "job", "list", "--json")).stdout).jobs.length as number;

describe("b9 job run refuses bad input before anything is sent", () => {
  const missing = join(dir, "no-such-file.csv");
  const big = join(dir, "big.bin");
  beforeAll(() => {
    // One byte over the cap, without writing 64 MiB: a sparse file.
    const fd = openSync(big, "w");
    ftruncateSync(fd, 64 * 2 ** 20 + 1);
    closeSync(fd);
    writeFileSync(join(dir, "requirements.txt"), "numpy\n");
  });

  it.each([
    [["--gpu", "nvidai"], 'unknown GPU kind "nvidai"; choose from nvidia, apple, amd, intel, any, none'],
    [["--timeout", "-5m"], 'the timeout "-5m" is negative'],
    [["--timeout", "8d"], "over the most a job may run, 7d"],
    [["--env", "TOKEN"], '"TOKEN" has no "="; write it as NAME=value'],
    [["--env", "1X=2"], '"1X" is not a variable name'],
    [["--vram", "24G"], '"G" could mean 24GB or 24GiB; say which'],
    [["--gpu", "none", "--vram", "8GB"], "--vram asks for GPU memory, but --gpu none asks for no GPU"],
    [["--cpu", "0"], '"0" is not a number of CPU cores above 0'],
    [["--retries", "11"], '"11" is not a whole number from 0 to 10'],
    [
      ["--retry-on", "lost,sometimes"],
      'unknown retry cause "sometimes"; choose from lost, out_of_memory, exit, error',
    ],
    [["--priority", "1001"], '"1001" is not a whole number from -1000 to 1000'],
    [["--python", "python3"], '"python3" is not a Python version such as 3.12'],
    [["--region", "us"], 'unknown region "us"; the one region is eu'],
    [["--input", missing], `--input ${missing} cannot be read: ENOENT`],
    [["--input", big], `the inputs come to more than 64.0 MiB (${big} alone is 64.0 MiB)`],
    [["--input", dir], `--input ${dir} is not a file`],
    [
      ["--packages", "numpy", "--requirements", join(dir, "requirements.txt")],
      "give --packages or --requirements, not both",
    ],
  ])("%j", async (args, sentence) => {
    const before = await jobCount();
    const r = await b9(env, "job", "run", ...args, "--detach", "--", "python3", "-c", "print(1)");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(sentence);
    expect(r.stdout).toBe("");
    expect(await jobCount()).toBe(before);
  });

  it("needs a command", async () => {
    const r = await b9(env, "job", "run", "--detach");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("missing required argument 'command'");
  });
});

describe("b9 job run --detach, list, show, cancel", () => {
  it("queues the command with its spec and prints how to follow it", async () => {
    const r = await b9(
      env,
      "job",
      "run",
      "--detach",
      "--priority",
      "-5",
      "--retries",
      "2",
      "--",
      "python3",
      "-c",
      "print(42)",
    );
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const id = /^Job (job_[a-f0-9]{16}) queued\./.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    expect(r.stdout).toContain(`Follow it with b9 job logs ${id} -f; stop it with b9 job cancel ${id}.`);

    const list = await b9(env, "job", "list");
    expect(list.stdout).toMatch(/^ID\s+STATE\s+PRIORITY\s+ATTEMPT\s+MACHINE\s+CREATED\s+COMMAND$/m);
    expect(list.stdout).toMatch(
      new RegExp(`^${id}\\s+QUEUED\\s+-5\\s+1/3\\s+-\\s+\\S+ ago\\s+python3 -c 'print\\(42\\)'$`, "m"),
    );

    const cancelled = await b9(env, "job", "cancel", id!);
    expect(cancelled).toMatchObject({
      code: 0,
      stdout: `Job ${id} cancelled (it was QUEUED); state CANCELLED.\n`,
    });

    const shown = await b9(env, "job", "show", id!);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^State:\s+CANCELLED \(cancelled by key \S+\)$/m);
    expect(shown.stdout).toMatch(/^Command:\s+python3 -c 'print\(42\)'$/m);
    expect(shown.stdout).toMatch(/^Attempt:\s+1\/3 \(retries: 2\)$/m);
    expect(shown.stdout).toMatch(/^Priority:\s+-5$/m);
    expect(shown.stdout).toMatch(
      /^Transitions:\nAT\s+STATE\s+MACHINE\s+REASON\n\S+\s+QUEUED\s+-\s+-\n\S+\s+CANCELLED\s+-\s+cancelled by key/m,
    );

    const again = await b9(env, "job", "cancel", id!);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`error: job ${id} has already ended (CANCELLED); nothing to cancel`);
    expect(again.stderr).toContain("see them all with b9 job list");

    const queued = await b9(env, "job", "list", "--state", "queued,running", "--json");
    expect(JSON.parse(queued.stdout).jobs.map((j: { id: string }) => j.id)).not.toContain(id);
    const ended = await b9(env, "job", "list", "--state", "CANCELLED", "--json");
    expect(JSON.parse(ended.stdout).jobs.map((j: { id: string }) => j.id)).toContain(id);
  });

  it("sends resources, placement, environment, variables and limits as the gateway's spec (--json)", async () => {
    const r = await b9(
      env,
      "job",
      "run",
      "--detach",
      "--json",
      "--cpu",
      "0.5",
      "--memory",
      "256MiB",
      "--pool",
      "external",
      "--timeout",
      "1h30m",
      "--python",
      "3.12",
      "--packages",
      "numpy, torch==2.5",
      "--env",
      "A=1",
      "--env",
      "B=x=y",
      "--idempotency-key",
      "nightly-1",
      "--",
      "python3",
      "train.py",
      "--epochs",
      "3",
    );
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout);
    expect(view.spec).toEqual({
      command: ["python3", "train.py", "--epochs", "3"],
      env: { A: "1", B: "x=y" },
      environment: { python: "3.12", packages: ["numpy", "torch==2.5"] },
      resources: { cpu: 0.5, memory_bytes: 256 * 2 ** 20 },
      pool: "external",
      timeout_seconds: 5400,
      idempotency_key: "nightly-1",
    });
    // The same key gives the same job, not a second one.
    const again = await b9(
      env,
      "job",
      "run",
      "--detach",
      "--json",
      "--idempotency-key",
      "nightly-1",
      "--",
      "true",
    );
    expect(JSON.parse(again.stdout).id).toBe(view.id);

    const shown = await b9(env, "job", "show", view.id);
    expect(shown.stdout).toMatch(/^Resources:\s+0.5 CPUs, 256 MiB memory$/m);
    expect(shown.stdout).toMatch(/^Environment:\s+Python 3.12 with numpy, torch==2.5$/m);
    expect(shown.stdout).toMatch(/^Placement:\s+pool external$/m);
    expect(shown.stdout).toMatch(/^Timeout:\s+1h30m$/m);
    // Names only: values may be secrets.
    expect(shown.stdout).toMatch(/^Variables:\s+A, B$/m);
    expect(shown.stdout).not.toContain("x=y");
    await b9(env, "job", "cancel", view.id);
  });

  it("takes the command's own options as the command's, with or without --", async () => {
    const r = await b9(env, "job", "run", "--detach", "--json", "python3", "-c", "print(1)", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).spec.command).toEqual(["python3", "-c", "print(1)", "--json"]);
    await b9(env, "job", "cancel", JSON.parse(r.stdout).id);
  });

  it("says why a followed job waits, and Ctrl+C leaves it queued", async () => {
    const io = captureIO(env);
    let interrupt: (() => void) | undefined;
    io.onInterrupt = (handler) => {
      interrupt = handler;
      return () => {
        interrupt = undefined;
      };
    };
    const running = run(["job", "run", "--", "true"], io);
    await waitFor(() => io.err.join("").includes("Waiting: "), {
      what: "the wait's reason",
      timeoutMs: 15_000,
    });
    interrupt?.();
    expect(await running).toBe(130);
    const said = io.err.join("");
    const id = /Job (job_[a-f0-9]{16}) queued/.exec(said)?.[1] as string;
    expect(said).toMatch(/\nWaiting: \S.*\n/);
    expect(said).toContain(`Detached; job ${id} keeps running. Follow it again with b9 job logs ${id} -f,`);
    expect(JSON.parse((await b9(env, "job", "show", id, "--json")).stdout).state).toBe("QUEUED");
    await b9(env, "job", "cancel", id);
  });

  it("relays why no machine could ever run a job, sending --vram and --country as the gateway's spec", async () => {
    const r = await b9(env, "job", "run", "--detach", "--vram", "24GB", "--country", "de,fr", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: no machine could ever run this job: .+/);
  });

  it("says which job is unknown and where to look", async () => {
    const r = await b9(env, "job", "show", "job_0000000000000000");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: no job job_0000000000000000 in this workspace");
    expect(r.stderr).toContain("see them all with b9 job list");
  });

  it("names the jobs scope when the key lacks it", async () => {
    const key = await inferenceKey(gw);
    const r = await b9({ ...env, BETA9_API_KEY: key }, "job", "run", "--detach", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "b9 job run needs a key with the jobs scope; an admin can make one with b9 key create NAME --scopes jobs",
    );
  });

  it("refuses an unknown --state, listing the states", async () => {
    const r = await b9(env, "job", "list", "--state", "DONE");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown state "DONE"; choose from QUEUED, ASSIGNED, PREPARING, RUNNING');
  });
});
