import type { MachineView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { machineView } from "../placement/testing/machine-view.ts";
import { fitsNow, type PlacementNeeds, placeReplica } from "./placement.ts";

const GB = 1e9;

const machine = machineView;

const nvidia = (vram: number, free: number, id: string, more: Partial<MachineView> = {}) =>
  machine({
    id,
    hardware: {
      os: "linux",
      arch: "x64",
      cpu_model: "x",
      cpu_cores: 16,
      memory_total_bytes: 128 * GB,
      gpus: [
        {
          index: 0,
          vendor: "nvidia",
          name: "NVIDIA RTX 4090",
          memory_total_bytes: vram,
          unified_memory: false,
        },
      ],
    },
    inference: { engines: [], models: [], memory_free_bytes: 64 * GB, vram_free_bytes: free },
    ...more,
  });

const needs = (over: Partial<PlacementNeeds> = {}): PlacementNeeds => ({
  model: "llama",
  pool: "external",
  gpu: "any",
  minVramBytes: null,
  countries: [],
  region: null,
  ...over,
});

describe("placeReplica", () => {
  it("prefers the least loaded machine, then the one with most free memory", () => {
    const busy = machine({
      id: "busy",
      inference: {
        engines: [],
        models: [{ name: "other", engine: "builtin", state: "ready", memory_bytes: 1, context_size: 1 }],
        memory_free_bytes: 60 * GB,
        vram_free_bytes: null,
      },
    });
    const small = machine({
      id: "small",
      inference: { engines: [], models: [], memory_free_bytes: 8 * GB, vram_free_bytes: null },
    });
    const big = machine({ id: "big" });
    const r = placeReplica(needs(), [busy, small, big]);
    expect(r.ok && r.machines.map((m) => m.id)).toEqual(["big", "small", "busy"]);
  });

  it("never places on cordoned, draining, unhealthy or offline machines", () => {
    const r = placeReplica(needs(), [
      machine({ id: "a", status: "CORDONED" }),
      machine({ id: "b", status: "DRAINING" }),
      machine({ id: "c", status: "UNHEALTHY" }),
      machine({ id: "d", status: "OFFLINE" }),
    ]);
    expect(r).toEqual({ ok: false, reason: expect.stringMatching(/no machine is READY/) });
  });

  it("explains a VRAM refusal with the best machine it turned away", () => {
    const r = placeReplica(needs({ gpu: "nvidia", minVramBytes: 8 * GB }), [
      nvidia(24 * GB, 6.1 * GB, "mac-studio-1"),
      nvidia(24 * GB, 2 * GB, "rig-2"),
      machine({ id: "cpu-only" }),
    ]);
    expect(r).toEqual({
      ok: false,
      reason: "no machine in pool external has 8.0 GB free VRAM; most free is 6.1 GB on mac-studio-1",
    });
  });

  it("filters by pool, GPU vendor and country or region", () => {
    const machines = [
      nvidia(24 * GB, 20 * GB, "de-1", { country: "DE" }),
      nvidia(24 * GB, 20 * GB, "us-1", { country: "US" }),
      machine({ id: "fr-cpu", country: "FR" }),
      machine({ id: "lab", pool: "lab", country: "DE" }),
    ];
    const eu = placeReplica(needs({ region: "eu" }), machines);
    expect(eu.ok && eu.machines.map((m) => m.id).sort()).toEqual(["de-1", "fr-cpu"]);
    const eunvidia = placeReplica(needs({ region: "eu", gpu: "nvidia" }), machines);
    expect(eunvidia.ok && eunvidia.machines.map((m) => m.id)).toEqual(["de-1"]);
    expect(placeReplica(needs({ countries: ["JP"] }), machines)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/JP/),
    });
    expect(placeReplica(needs({ pool: "gpu" }), machines)).toMatchObject({
      ok: false,
      reason: "no ready machine in pool gpu",
    });
    expect(placeReplica(needs({ gpu: "apple" }), machines)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/apple GPU/),
    });
  });

  it("does not put a second replica where the model already runs", () => {
    const serving = machine({
      id: "a",
      inference: {
        engines: [],
        models: [{ name: "llama", engine: "builtin", state: "ready", memory_bytes: 1, context_size: 1 }],
        memory_free_bytes: 10 * GB,
        vram_free_bytes: null,
      },
    });
    // Placed there by the gateway: not again.
    expect(placeReplica({ ...needs(), placedOn: (id) => id === "a" }, [serving])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/already serves/),
    });
    // Serving the name by its own account only: the gateway may place the replica there (and checks it).
    expect(placeReplica({ ...needs(), placedOn: () => false }, [serving])).toMatchObject({
      ok: true,
      machines: [{ id: "a" }],
    });
  });

  it("fitsNow: pool, GPU and country or region hold at routing time, not only at placement", () => {
    const de = machine({ id: "de", country: "DE" });
    const us = machine({ id: "us", country: "US" });
    expect(fitsNow(needs(), de)).toBe(true);
    expect(fitsNow(needs({ region: "eu" }), de)).toBe(true);
    expect(fitsNow(needs({ region: "eu" }), us)).toBe(false);
    expect(fitsNow(needs({ countries: ["US"] }), us)).toBe(true);
    expect(fitsNow(needs({ region: "eu" }), machine({ id: "x", country: null }))).toBe(false);
    expect(fitsNow(needs({ pool: "gpu" }), de)).toBe(false);
    expect(fitsNow(needs({ gpu: "nvidia" }), de)).toBe(false);
    expect(fitsNow(needs({ gpu: "none" }), de)).toBe(true);
  });
});
