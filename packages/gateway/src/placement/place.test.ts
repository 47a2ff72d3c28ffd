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
