import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  type AgentProc,
  aptSource,
  ensureRootfs,
  type GatewayProc,
  initAgent,
  PODMAN_ROOTFS_DIR,
  podmanInstalled,
  startAgent,
  startGateway,
  testPodmanOptions,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { podmanRunArgs } from "../src/jobs/podman.ts";
import { assignment, finalState, logLines, processesWith, read, type Stream } from "./jobs-helpers.ts";

/*
 * The podman runner on a real agent (as root, as on this machine): a job runs in a Debian rootfs
 * built here with debootstrap (once, kept under the repository's .cache/), with its logs and exit
 * code, no network, its directory writable and the rest read-only, stopped whole on cancel (no
 * container, no process left) and reported out of memory past its limit. A slower tier: the first
 * run builds the rootfs (about 30 s).
 */

let ROOTFS: string;
let gw: GatewayProc;
let agent: AgentProc;
let token: string;
let listener: Server;
let listenerHits = 0;

/** This agent's containers that podman still knows of, running or not. */
function containers(): string[] {
  return execFileSync("podman", ["--cgroup-manager", "cgroupfs", "ps", "--all", "--format", "{{.Names}}"], {
    encoding: "utf8",
  })
    .split("\n")
    .filter((n) => n.includes("-job-podman-"));
}

function control(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(agent.controlUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function submit(a: ReturnType<typeof assignment>): Promise<Stream> {
  return read(await control("POST", "/jobs", a));
}

beforeAll(async () => {
  if (!podmanInstalled) return;
  ROOTFS = ensureRootfs();
  listener = createServer((_req, res) => {
    listenerHits++;
    res.end("reached");
  });
  await new Promise<void>((done) => listener.listen(0, "127.0.0.1", done));
  gw = await startGateway();
  const path = await initAgent(gw, { name: "jobs-podman" });
  const cfg = YAML.parse(readFileSync(path, "utf8")) as { machine: { token: string }; jobs?: unknown };
  cfg.jobs = { rootfs_dirs: [PODMAN_ROOTFS_DIR], podman: testPodmanOptions() };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  token = cfg.machine.token;
  agent = await startAgent(path);
}, 600_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
  listener?.close();
});

describe.skipIf(!podmanInstalled)("jobs in podman, from a debootstrap rootfs", () => {
  it("runs the job: its logs and exit code, no network, /job writable, the rest read-only, nobody", async () => {
    const port = (listener.address() as AddressInfo).port;
    const script = [
      ". /etc/os-release; echo hello from $VERSION_CODENAME",
      // minbase has no Python, the host (this test's machine) has.
      "command -v python3 >/dev/null && echo host programs || echo only the rootfs programs",
      "echo uid $(id -u) caps $(grep CapEff /proc/self/status | cut -f2)",
      "echo interfaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')",
      "(echo GET / > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && echo reached || echo no network",
      "echo made > $B9_OUTPUT_DIR/made.txt && echo job dir writable",
      "touch /etc/b9-written 2>/dev/null && echo root writable || echo root read-only",
      "exit 3",
    ].join("\n");
    const run = await submit(
      assignment("job-podman-run", {
        command: ["bash", "-c", script],
        rootfs: ROOTFS,
        env: { PORT: String(port) },
      }),
    );
    expect(run.status).toBe(200);
    const events = await run.done;
    const lines = logLines(events);
    expect(lines).toContain(`hello from ${aptSource().suite}`);
    expect(lines).toContain("only the rootfs programs");
    expect(lines).toContain("uid 65534 caps 0000000000000000");
    expect(lines).toContain("interfaces lo");
    expect(lines).toContain("no network");
    expect(lines).toContain("job dir writable");
    expect(lines).toContain("root read-only");
    expect(listenerHits).toBe(0);
    expect(finalState(events)).toMatchObject({ state: "FAILED", exit_code: 3, reason: "exit code 3" });
    expect(events.some((e) => e.type === "output" && e.name === "made.txt")).toBe(true);
    // The owner's rootfs is untouched: the container wrote into an overlay over it.
    expect(existsSync(join(ROOTFS, "job"))).toBe(false);
    expect(existsSync(join(ROOTFS, "etc/b9-written"))).toBe(false);
    expect(containers()).toEqual([]);
  }, 60_000);

  it("cancel: the job ends CANCELLED, no container and no process of it is left", async () => {
    const marker = `b9podcancel${process.pid}`;
    const secret = `b9podsecret${process.pid}`;
    const run = await submit(
      assignment("job-podman-cancel", {
        command: ["sh", "-c", "sleep 1000 & echo started; while :; do sleep 1; done", `${marker}-child`],
        rootfs: ROOTFS,
        env: { API_TOKEN: secret },
      }),
    );
    await waitFor(() => logLines(run.events).includes("started") && processesWith(marker).length >= 1, {
      what: "the job to run in its container",
    });
    expect(containers()).toHaveLength(1);
    // The value reaches the job through podman's environment, never a command line.
    expect(processesWith(secret)).toEqual([]);
    const pid = processesWith(marker)[0];
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain(`API_TOKEN=${secret}`);
    const cancelled = await control("POST", "/jobs/job-podman-cancel/cancel");
    expect(await cancelled.json()).toEqual({ job_id: "job-podman-cancel", state: "CANCELLED" });
    expect(finalState(await run.done)).toMatchObject({ state: "CANCELLED", reason: "cancelled" });
    expect(processesWith(marker)).toEqual([]);
    expect(processesWith("sleep 1000")).toEqual([]);
    expect(containers()).toEqual([]);
  }, 60_000);

  it("a 64 MiB memory limit: the job is killed and reported out of memory", async () => {
    const run = await submit(
      assignment("job-podman-oom", {
        command: ["sh", "-c", "test -e /usr/bin/python3 || echo in the rootfs; exec tail /dev/zero"],
        rootfs: ROOTFS,
        resources: { memory_bytes: 64 * 1024 * 1024 },
      }),
    );
    const end = finalState(await run.done);
    expect(end).toMatchObject({ state: "FAILED", out_of_memory: true, exit_code: 137 });
    expect(end.reason).toBe("killed: out of memory (limit 64 MiB)");
    expect(logLines(run.events)).toContain("in the rootfs");
    expect(containers()).toEqual([]);
  }, 60_000);

  it("refuses a rootfs outside jobs.rootfs_dirs, a rootfs with a Python environment, and both a rootfs and an image", async () => {
    const outside = await submit(assignment("job-podman-outside", { command: ["true"], rootfs: "/etc" }));
    expect(outside.status).toBe(403);
    expect(outside.error?.code).toBe("path_not_allowed");
    expect(outside.error?.message).toMatch(/jobs\.rootfs_dirs/);
    const climbing = await submit(
      assignment("job-podman-climb", { command: ["true"], rootfs: `${PODMAN_ROOTFS_DIR}/../../..` }),
    );
    expect(climbing.error?.code).toBe("path_not_allowed");
    const withEnv = await submit(
      assignment("job-podman-env", {
        command: ["true"],
        rootfs: ROOTFS,
        environment: { packages: ["numpy"] },
      }),
    );
    expect(withEnv.status).toBe(400);
    expect(withEnv.error?.message).toMatch(/brings its own Python/);
    const both = await submit(
      assignment("job-podman-both", { command: ["true"], rootfs: ROOTFS, image: "debian:12" }),
    );
    expect(both.error).toMatchObject({
      code: "bad_request",
      message: "a job names a rootfs or an image, not both",
    });
  });

  it("a command the rootfs does not have: FAILED, command not found", async () => {
    const run = await submit(
      assignment("job-podman-missing", { command: ["python3", "-V"], rootfs: ROOTFS }),
    );
    expect(finalState(await run.done)).toMatchObject({
      state: "FAILED",
      reason: "command not found: python3",
    });
    expect(containers()).toEqual([]);
  }, 60_000);

  it("an image this machine cannot pull: FAILED with podman's words, nothing left", async () => {
    const run = await submit(
      assignment("job-podman-image", { command: ["true"], image: "localhost:1/b9-no-such-image:latest" }),
    );
    expect(run.status).toBe(200);
    const events = await run.done;
    expect(finalState(events)).toMatchObject({
      state: "FAILED",
      exit_code: 125,
      reason: "podman could not start the job (its words are in the job's log)",
    });
    expect(logLines(events).some((l) => l.includes("localhost:1/b9-no-such-image"))).toBe(true);
    expect(containers()).toEqual([]);
  }, 60_000);

  it("an agent killed under a running job: restarted, it removes the container and reports the run FAILED", async () => {
    const marker = `b9podrestart${process.pid}`;
    const run = await submit(
      assignment("job-podman-restart", {
        command: ["sh", "-c", "echo started; while :; do sleep 1; done", marker],
        rootfs: ROOTFS,
      }),
    );
    await waitFor(() => logLines(run.events).includes("started"), { what: "the job to run" });
    expect(containers()).toHaveLength(1);
    await agent.proc.stop("SIGKILL");
    await run.done.catch(() => []);
    agent = await startAgent(agent.configPath);
    await waitFor(() => processesWith(marker).length === 0 && containers().length === 0, {
      what: "the container and its processes to be gone",
    });
    const events = await (await read(await control("GET", "/jobs/job-podman-restart/events"))).done;
    expect(finalState(events)).toMatchObject({ state: "FAILED", reason: "the agent restarted while it ran" });
  }, 60_000);
});

describe("podman's arguments", () => {
  const spec = {
    name: "b9-0000-job",
    jobDir: "/agent/jobs/j/work",
    rootfs: "/srv/rootfs/debian",
    envNames: ["API_TOKEN", "CUDA_VISIBLE_DEVICES"],
    devices: [] as string[],
    user: { uid: 65534, gid: 65534 },
    cgroupParent: "/b9-jobs/j-1",
    memoryBytes: 64 * 1024 * 1024,
    command: ["python3", "train.py"],
  };

  it("a GPU job gets its device nodes with --device, a CPU job none; values never on the command line", () => {
    const gpu = podmanRunArgs(
      {},
      { ...spec, devices: ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"] },
    );
    expect(gpu.join(" ")).toContain("--device /dev/nvidia0 --device /dev/nvidiactl --device /dev/nvidia-uvm");
    expect(podmanRunArgs({}, spec)).not.toContain("--device");
    expect(gpu.join(" ")).toContain("--env API_TOKEN --env CUDA_VISIBLE_DEVICES");
    expect(gpu.some((a) => a.includes("="))).toBe(false);
    expect(gpu.slice(-3)).toEqual(["/srv/rootfs/debian:O", "python3", "train.py"]);
  });

  it("the limit is the job's cgroup where there is one, else podman's --memory; an image is pulled only when missing", () => {
    expect(podmanRunArgs({}, spec).join(" ")).toContain("--cgroup-parent /b9-jobs/j-1");
    expect(podmanRunArgs({}, spec)).not.toContain("--memory");
    const image = podmanRunArgs(
      { runtime: "runc", ulimits: ["nofile=4096:4096"] },
      { ...spec, rootfs: undefined, image: "debian:12", cgroupParent: null },
    ).join(" ");
    expect(image).toContain("--runtime runc");
    expect(image).toContain("--ulimit nofile=4096:4096");
    expect(image).toContain("--memory 67108864 --memory-swap 67108864");
    expect(image).toContain("--pull missing debian:12 python3 train.py");
  });
});
