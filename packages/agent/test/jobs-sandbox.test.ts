import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import {
  type GatewayProc,
  type ModelAgent,
  startAgent,
  startGateway,
  startModelAgent,
  tempDir,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignment, finalState, logLines, processesWith, read, sha256, submit } from "./jobs-helpers.ts";

/*
 * Jobs on a real agent (as root, as on this machine) with its Linux default runner, bubblewrap:
 * stopped whole on cancel and timeout (a grandchild that ignores SIGTERM too), held to a memory
 * limit by a cgroup, kept off the network and out of everything but its own directory, its
 * outputs announced with their sha256, its Python environment built once with uv and reused, and
 * its run reported FAILED when the agent restarts under it.
 */

const bwrapInstalled = existsSync("/usr/bin/bwrap");
let gw: GatewayProc;
let worker: ModelAgent;
let listener: Server;
let listenerHits = 0;

/** A job whose processes carry `marker` and ignore SIGTERM: a shell, and a grandchild it forked. */
function stubborn(marker: string): string[] {
  return [
    "sh",
    "-c",
    `trap '' TERM; sh -c 'trap "" TERM; while :; do sleep 1; done' ${marker}-grandchild & echo started; while :; do sleep 1; done`,
    `${marker}-child`,
  ];
}

beforeAll(async () => {
  listener = createServer((_req, res) => {
    listenerHits++;
    res.end("reached");
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  gw = await startGateway();
  // uv comes with the test's Python packages (scripts/requirements-test.txt).
  worker = await startModelAgent(gw, {
    name: "jobs-bwrap",
    env: { PATH: `${dirname(testPython())}:${process.env.PATH}` },
  });
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
  listener?.close();
});

describe.skipIf(!bwrapInstalled)("jobs in bubblewrap", () => {
  it("cancel: SIGTERM, the grace, SIGKILL, and no process of the job survives", async () => {
    const marker = `b9cancel${process.pid}`;
    const secret = `b9secret${process.pid}`;
    const run = await submit(
      worker,
      assignment("job-cancel", { command: stubborn(marker), env: { API_TOKEN: secret } }),
    );
    await waitFor(() => logLines(run.events).includes("started") && processesWith(marker).length >= 2, {
      what: "the job and its grandchild to run",
    });
    // The job's environment reaches it, but no command line another local user could read.
    expect(processesWith(secret)).toEqual([]);
    const pid = processesWith(`${marker}-child`)[0];
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain(`API_TOKEN=${secret}`);
    const cancelled = await worker.control("POST", "/jobs/job-cancel/cancel");
    expect(await cancelled.json()).toEqual({ job_id: "job-cancel", state: "CANCELLED" });
    expect(finalState(await run.done)).toMatchObject({ state: "CANCELLED", reason: "cancelled" });
    expect(processesWith(marker)).toEqual([]);
  }, 40_000);

  it("timeout: stopped the same way, TIMED_OUT", async () => {
    const marker = `b9timeout${process.pid}`;
    const run = await submit(
      worker,
      assignment("job-timeout", { command: stubborn(marker), timeout_seconds: 2 }),
    );
    const events = await run.done;
    expect(finalState(events)).toMatchObject({ state: "TIMED_OUT", reason: "timed out after 2s" });
    expect(processesWith(marker)).toEqual([]);
  }, 40_000);

  it("a 64 MiB memory limit: the job is killed and reported out of memory", async () => {
    const run = await submit(
      worker,
      assignment("job-oom", {
        command: ["python3", "-c", "x = bytearray(512 * 1024 * 1024); print('allocated', len(x))"],
        resources: { memory_bytes: 64 * 1024 * 1024 },
      }),
    );
    const end = finalState(await run.done);
    expect(end).toMatchObject({ state: "FAILED", out_of_memory: true });
    expect(end.reason).toBe("killed: out of memory (limit 64 MiB)");
    expect(logLines(run.events)).not.toContain(`allocated ${512 * 1024 * 1024}`);
  }, 40_000);

  it("no network, no writes outside the job's directory, an unprivileged uid with no capabilities", async () => {
    const outside = join(tempDir("b9-outside-"), "written-by-job");
    const port = (listener.address() as AddressInfo).port;
    const script = [
      "import os, urllib.request",
      "for url in ['http://1.1.1.1', 'http://127.0.0.1:%d' % int(os.environ['PORT'])]:",
      "    try:",
      "        urllib.request.urlopen(url, timeout=3); print('reached', url)",
      "    except Exception as e: print('no network', url, type(e).__name__)",
      "for path in [os.environ['OUTSIDE'], '/usr/b9-written', os.path.join(os.environ['HOME'], 'mine')]:",
      "    try:",
      "        open(path, 'w').write('x'); print('wrote', path)",
      "    except OSError as e: print('cannot write', path, e.errno)",
      "print('uid', os.getuid(), 'caps', [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])",
    ].join("\n");
    const run = await submit(
      worker,
      assignment("job-confined", {
        command: ["python3", "-c", script],
        env: { PORT: String(port), OUTSIDE: outside },
      }),
    );
    const events = await run.done;
    const lines = logLines(events);
    expect(lines).toContain("no network http://1.1.1.1 URLError");
    expect(lines).toContain(`no network http://127.0.0.1:${port} URLError`);
    expect(lines.some((l) => l.startsWith(`cannot write ${outside}`))).toBe(true);
    expect(lines).toContain("cannot write /usr/b9-written 30");
    expect(lines).toContain("wrote /job/mine");
    expect(lines).toContain("uid 65534 caps 0000000000000000");
    expect(listenerHits).toBe(0);
    expect(existsSync(outside)).toBe(false);
    expect(finalState(events).state).toBe("SUCCEEDED");
  }, 40_000);

  it("announces the files under $B9_OUTPUT_DIR with their sha256, and serves their bytes", async () => {
    const run = await submit(
      worker,
      assignment(
        "job-outputs",
        {
          command: [
            "sh",
            "-c",
            'mkdir -p "$B9_OUTPUT_DIR/sub" && cp data.txt "$B9_OUTPUT_DIR/copy.txt" && printf result > "$B9_OUTPUT_DIR/sub/r.txt"',
          ],
        },
        { inputs: { "data.txt": "some input bytes\n" } },
      ),
    );
    const events = await run.done;
    const outputs = events.filter((e) => e.type === "output");
    expect(outputs.map(({ name, sha256: sha, size }) => ({ name, sha, size }))).toEqual([
      { name: "copy.txt", sha: sha256("some input bytes\n"), size: 17 },
      { name: "sub/r.txt", sha: sha256("result"), size: 6 },
    ]);
    expect(finalState(events).state).toBe("SUCCEEDED");
    const bytes = Buffer.from(
      await (await worker.control("GET", "/jobs/job-outputs/outputs/sub/r.txt")).arrayBuffer(),
    );
    expect(sha256(bytes)).toBe(sha256("result"));
    expect((await worker.control("GET", "/jobs/job-outputs/outputs/nothing.txt")).status).toBe(404);
    expect((await worker.control("DELETE", "/jobs/job-outputs")).status).toBe(204);
    expect((await worker.control("GET", "/jobs/job-outputs/events")).status).toBe(404);
  }, 40_000);

  it("builds a Python environment with uv once, and a second job reuses it", async () => {
    const environment = { python: "3.11", packages: ["six==1.17.0"] };
    const command = ["python", "-c", "import six, sys; print('six', six.__version__, sys.prefix)"];
    const first = await (await submit(worker, assignment("job-env-1", { command, environment }))).done;
    expect(finalState(first), JSON.stringify(first)).toMatchObject({ state: "SUCCEEDED" });
    expect(
      logLines(first).some((l) => l.startsWith("six 1.17.0 ")),
      JSON.stringify(first),
    ).toBe(true);

    const submitted = performance.now();
    const second = await submit(worker, assignment("job-env-2", { command, environment }));
    await waitFor(() => logLines(second.events).length > 0, {
      what: "the second job's first line",
      intervalMs: 5,
    });
    const firstLineMs = performance.now() - submitted;
    console.log(`cached environment: submission to first log line ${firstLineMs.toFixed(0)} ms (bwrap)`);
    const events = await second.done;
    expect(logLines(events)).toEqual(logLines(first).filter((l) => l.startsWith("six ")));
    expect(logLines(events).some((l) => l.includes("built the Python environment"))).toBe(false);
    expect(firstLineMs).toBeLessThan(5_000);
  }, 180_000);

  it("a package that does not resolve fails the run with uv's reason, and leaves no environment behind", async () => {
    const envs = join(dirname(worker.agent.configPath), "job-envs");
    const before = existsSync(envs) ? readdirSync(envs) : [];
    const environment = { packages: ["b9-no-such-package-zzz==0.0.1"] };
    const events = await (
      await submit(worker, assignment("job-env-bad", { command: ["python", "-V"], environment }))
    ).done;
    const end = finalState(events);
    expect(end.state).toBe("FAILED");
    expect(end.reason).toMatch(/^uv could not install the packages: .*b9-no-such-package-zzz/);
    // No environment, finished or half-built, that a later job could pick up: only what was there.
    expect(readdirSync(envs).filter((n) => n !== ".uv-cache")).toEqual(
      before.filter((n) => n !== ".uv-cache"),
    );
  }, 120_000);
});

describe.skipIf(!bwrapInstalled)("an agent restart under a running job", () => {
  it("reports the run FAILED, kills what was left, and keeps the list", async () => {
    const marker = `b9restart${process.pid}`;
    const run = await submit(worker, assignment("job-restart", { command: stubborn(marker) }));
    await waitFor(() => processesWith(marker).length >= 2, { what: "the job to run" });
    await worker.agent.proc.stop("SIGKILL");
    await run.done.catch(() => []);
    const again = await startAgent(worker.agent.configPath, {
      env: { PATH: `${dirname(testPython())}:${process.env.PATH}` },
    });
    const control = (path: string) =>
      fetch(again.controlUrl + path, { headers: { authorization: `Bearer ${worker.token}` } });
    worker.agent = again;
    await waitFor(() => processesWith(marker).length === 0, { what: "the job's processes to be gone" });
    const list = (await (await control("/jobs")).json()) as { jobs: { job_id: string; state: string }[] };
    expect(list.jobs.find((j) => j.job_id === "job-restart")?.state).toBe("FAILED");
    expect(list.jobs.find((j) => j.job_id === "job-cancel")?.state).toBe("CANCELLED");
    const events = await (await read(await control("/jobs/job-restart/events"))).done;
    expect(finalState(events)).toMatchObject({ state: "FAILED", reason: "the agent restarted while it ran" });
  }, 60_000);
});
