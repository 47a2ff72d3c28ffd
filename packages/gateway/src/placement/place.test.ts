import { quantizedBytes } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import type { Constraints } from "./constraints.ts";
import { type Needs, place } from "./place.ts";
import { gpu, machineView } from "./testing/machine-view.ts";

// The scheduler's replicas are placement's first user (scheduler/placement.test.ts); these are the
// needs a job brings: memory rather than a model, no model to exclude, its own words in reasons.
const GB = 1e9;
const anywhere: Constraints = { pool: "external", gpu: "any", countries: [], region: null };
const job = (over: Partial<Needs> = {}): Needs => ({
  constraints: anywhere,
  resources: { vramBytes: null, memoryBytes: null },
  askedBy: "this job",
  ...over,
});
const withModels = (id: string, freeBytes: number, models: number) =>
  machineView({
    id,
    inference: {
      engines: [],
      models: Array.from({ length: models }, (_, i) => ({
        name: `m${i}`,
        engine: "builtin",
        state: "ready",
        context_size: null,
        memory_bytes: null,
      })),
      memory_free_bytes: freeBytes,
      vram_free_bytes: null,
    },
  });

describe("placing work that is not a model", () => {
  it("memory counts what the machine's models already use: only a machine with that much free takes it", () => {
    const full = withModels("full", 4 * GB, 3);
    const roomy = withModels("roomy", 20 * GB, 1);
    const idle = withModels("idle", 10 * GB, 0);
    const fits = place(job({ resources: { vramBytes: null, memoryBytes: 8 * GB } }), [full, roomy, idle]);
    // Beside models, least loaded first.
    expect(fits).toMatchObject({ ok: true, machines: [{ id: "idle" }, { id: "roomy" }] });
    expect(place(job({ resources: { vramBytes: null, memoryBytes: 32 * GB } }), [full, roomy, idle])).toEqual(
      {
        ok: false,
        reason: "no machine in pool external has 32.0 GB free memory; most free is 20.0 GB on roomy",
      },
    );
  });

  it("says who asked when no machine fits, and VRAM on unified memory is the free RAM", () => {
    const mac = machineView({
      id: "mac",
      hardware: {
        os: "darwin",
        arch: "arm64",
        cpu_model: "M2",
        cpu_cores: 12,
        memory_total_bytes: 64 * GB,
        gpus: [gpu("apple", 64 * GB, true)],
      },
    });
    expect(place(job({ constraints: { ...anywhere, gpu: "none" } }), [mac])).toEqual({
      ok: false,
      reason: "every ready machine in pool external has a GPU, and this job asks for none",
    });
    expect(place(job({ resources: { vramBytes: 16 * GB, memoryBytes: null } }), [mac])).toMatchObject({
      ok: true,
      machines: [{ id: "mac" }],
    });
  });
});

describe("placing a model converted to another type (--quantize)", () => {
  // A 7B model: its weights at the type the machine will convert it to, not at the source's.
  const seven = { size: 3.9 * GB, parameter_count: 7e9, quantization: "Q4_0" };
  const model = (target: string): Needs =>
    job({
      askedBy: "this deployment",
      resources: {
        vramBytes: null,
        memoryBytes: null,
        weights: { bytes: quantizedBytes(seven, target)!, what: `llama at ${target}` },
      },
    });
  const laptop = withModels("laptop", 6 * GB, 0);
  const server = withModels("server", 32 * GB, 2);

  it("a machine that fits the Q4_K_M but not the Q8_0 is not chosen for the Q8_0", () => {
    expect(place(model("Q4_K_M"), [laptop, server])).toMatchObject({
      ok: true,
      machines: [{ id: "laptop" }, { id: "server" }],
    });
    expect(place(model("Q8_0"), [laptop, server])).toMatchObject({ ok: true, machines: [{ id: "server" }] });
    expect(place(model("Q8_0"), [laptop])).toEqual({
      ok: false,
      reason: "no machine in pool external has 7.4 GB free for llama at Q8_0; most free is 6.0 GB on laptop",
    });
  });

  it("weights go to the GPU's free memory where the machine has one, else to its RAM", () => {
    const rig = machineView({
      id: "rig",
      hardware: { ...laptop.hardware, gpus: [gpu("nvidia", 8 * GB)] },
      inference: { engines: [], models: [], memory_free_bytes: 64 * GB, vram_free_bytes: 5 * GB },
    });
    expect(place(model("Q4_K_M"), [rig])).toMatchObject({ ok: true });
    expect(place(model("Q8_0"), [rig])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/5\.0 GB on rig$/),
    });
  });

  it("the converted size comes from the parameter count, else from the source's size scaled by bits per weight", () => {
    expect(quantizedBytes(seven, "Q8_0")).toBe(Math.ceil((7e9 * 8.5) / 8));
    expect(quantizedBytes({ ...seven, parameter_count: null }, "q8_0")).toBe(
      Math.ceil((3.9 * GB * 8.5) / 4.5),
    );
    expect(quantizedBytes({ size: null, parameter_count: null, quantization: "Q4_0" }, "Q8_0")).toBeNull();
  });
});
