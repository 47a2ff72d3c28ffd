import type { CreateJob } from "@beta9/protocol";
import type { Job } from "@beta9/store";
import { describe, expect, it } from "vitest";
import { gpu, machineView } from "../placement/testing/machine-view.ts";
import { freeGpus, jobAsk, loadOf, placeNow } from "./needs.ts";

// Placement for jobs on the machines' real shapes (what the registry shows): GPUs a job is given are
// its own, and what the jobs on a machine asked of its memory counts before it shows in a heartbeat.
const GB = 1e9;
const ask = (resources: CreateJob["resources"]) => jobAsk({ command: ["x"], resources });
const twoGpus = machineView({
  id: "box",
  hardware: {
    os: "linux",
    arch: "x64",
    cpu_model: "x",
    cpu_cores: 16,
    memory_total_bytes: 64 * GB,
    gpus: [
      { ...gpu("nvidia", 24 * GB), index: 0 },
      { ...gpu("nvidia", 80 * GB), index: 1 },
    ],
  },
  inference: { engines: [], models: [], memory_free_bytes: 60 * GB, vram_free_bytes: 104 * GB },
});
const running = (over: Partial<Job>): Job =>
  ({ id: "job_r", machine_id: "box", spec: JSON.stringify({ command: ["x"] }), gpus: null, ...over }) as Job;

describe("placing jobs", () => {
  it("a CPU job goes to a machine with GPUs too, and is given none", () => {
    const cpu = ask(undefined);
    expect(placeNow(cpu, [twoGpus], new Map(), new Set())).toMatchObject({ ok: true });
    expect(freeGpus(cpu, twoGpus, new Set())).toEqual([]);
  });

  it("a GPU job gets GPUs with the VRAM it asks, never one another job holds", () => {
    const big = ask({ gpu: "nvidia", min_vram_bytes: 40 * GB });
    expect(freeGpus(big, twoGpus, new Set())).toEqual([1]);
    const loads = loadOf([running({ gpus: "[1]" })]);
    const placed = placeNow(big, [twoGpus], loads, new Set());
    expect(placed).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/GPUs taken by other jobs|VRAM/),
    });
    const small = ask({ gpu: "nvidia" });
    expect(placeNow(small, [twoGpus], loads, new Set())).toMatchObject({ ok: true });
    expect(freeGpus(small, twoGpus, loads.get("box")!.gpus)).toEqual([0]);
  });

  it("memory the machine's jobs asked for counts before its heartbeat shows it used", () => {
    const loads = loadOf([
      running({ spec: JSON.stringify({ command: ["x"], resources: { memory_bytes: 50 * GB } }) }),
    ]);
    const placed = placeNow(ask({ memory_bytes: 20 * GB }), [twoGpus], loads, new Set());
    expect(placed).toMatchObject({ ok: false, reason: expect.stringMatching(/free memory/) });
    expect(placeNow(ask({ memory_bytes: 10 * GB }), [twoGpus], loads, new Set())).toMatchObject({ ok: true });
  });

  it("spreads jobs: of machines that fit alike, the one running the fewest jobs first", () => {
    const other = machineView({ id: "other" });
    const busy = loadOf([running({}), running({ id: "job_s" })]);
    expect(placeNow(ask(undefined), [twoGpus, other], busy, new Set())).toMatchObject({
      ok: true,
      machines: [{ id: "other" }, { id: "box" }],
    });
  });

  it("a retry prefers a machine it was not lost on, and takes that one when none other fits", () => {
    const other = machineView({ id: "other" });
    const cpu = ask(undefined);
    expect(placeNow(cpu, [twoGpus, other], new Map(), new Set(["box"]))).toMatchObject({
      ok: true,
      machines: [{ id: "other" }],
    });
    expect(placeNow(cpu, [twoGpus], new Map(), new Set(["box"]))).toMatchObject({
      ok: true,
      machines: [{ id: "box" }],
    });
  });

  it("a rootfs job goes only where podman is; while none has it, the reason says so", () => {
    const rootfs = jobAsk({ command: ["x"], rootfs: "/srv/debian" });
    const runners = (podman: boolean) => ({
      default: "bwrap" as const,
      bwrap: true,
      podman: podman ? { rootless: true } : null,
      cgroups: "v2" as const,
    });
    const bare = machineView({ id: "bare", runners: runners(false) });
    const withPodman = machineView({ id: "podman", runners: runners(true) });
    expect(placeNow(rootfs, [bare], new Map(), new Set())).toEqual({
      ok: false,
      reason:
        "no ready machine in pool external has podman, which a job in a rootfs needs (install podman on a machine, or run the job without a rootfs)",
    });
    expect(placeNow(rootfs, [bare, withPodman], new Map(), new Set())).toMatchObject({
      ok: true,
      machines: [{ id: "podman" }],
    });
    // An agent that has not said (older ones) is offered it, and declines it itself if it must.
    expect(placeNow(rootfs, [machineView({ id: "old" })], new Map(), new Set())).toMatchObject({ ok: true });
    expect(placeNow(ask(undefined), [bare], new Map(), new Set())).toMatchObject({ ok: true });
  });

  it("a GPU job waiting for VRAM says what it needs and the largest GPU free", () => {
    const small = machineView({
      id: "m1",
      hardware: {
        os: "linux",
        arch: "x64",
        cpu_model: "x",
        cpu_cores: 8,
        memory_total_bytes: 64 * GB,
        gpus: [
          { ...gpu("nvidia", 8 * GB), index: 0 },
          { ...gpu("nvidia", 8 * GB), index: 1 },
        ],
      },
      // Both GPUs together: the machine's free VRAM passes, each GPU is too small.
      inference: { engines: [], models: [], memory_free_bytes: 60 * GB, vram_free_bytes: 16 * GB },
    });
    expect(placeNow(ask({ gpu: "nvidia", min_vram_bytes: 12 * GB }), [small], new Map(), new Set())).toEqual({
      ok: false,
      reason: "needs 1 nvidia GPU with 12.0 GB VRAM: the largest free is 8.0 GB on m1",
    });
    // Fits when free, taken by another job now: it waits for that one.
    const loads = loadOf([running({ machine_id: "m1", gpus: "[0,1]" })]);
    expect(placeNow(ask({ gpu: "nvidia" }), [small], loads, new Set())).toMatchObject({
      ok: false,
      reason: "every machine that fits has its GPUs taken by other jobs; it runs when one is free",
    });
  });
});
