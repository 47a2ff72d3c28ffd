import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseRocmSmiGpus, parseRocmSmiUsage } from "./rocm-smi.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");

describe("rocm-smi", () => {
  it("reads the recorded Radeon RX 7900 XT", () => {
    expect(parseRocmSmiGpus(recorded("rocm-smi-rx7900xt.json"))).toEqual([
      {
        index: 0,
        vendor: "amd",
        name: "Radeon RX 7900 XT",
        memory_total_bytes: 21_458_059_264,
        memory_used_bytes: 27_856_896,
        utilization_percent: 0,
        unified_memory: false,
        backend: "rocm",
      },
    ]);
  });

  it("reads usage from the same recording", () => {
    expect(parseRocmSmiUsage(recorded("rocm-smi-rx7900xt.json"))).toEqual([
      { index: 0, memory_used_bytes: 27_856_896, utilization_percent: 0 },
    ]);
  });

  it("documented format: several cards in card order, older key spelling, a system entry, N/A values", () => {
    const text = JSON.stringify({
      card1: {
        "Card series": "AMD Instinct MI250X/MI250",
        "VRAM Total Memory (B)": "68702699520",
        "GPU use (%)": "N/A",
      },
      card0: {
        "Card series": "AMD Instinct MI250X/MI250",
        "VRAM Total Memory (B)": "68702699520",
        "GPU use (%)": "7",
      },
      system: { "Driver version": "6.7.0" },
    });
    const gpus = parseRocmSmiGpus(text);
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1]);
    expect(gpus[0]).toMatchObject({
      name: "AMD Instinct MI250X/MI250",
      utilization_percent: 7,
      driver_version: "6.7.0",
    });
    expect(gpus[1]).not.toHaveProperty("utilization_percent");
  });

  it("returns no GPUs when rocm-smi lists none", () => {
    expect(parseRocmSmiGpus("{}")).toEqual([]);
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseRocmSmiGpus("ERROR: No AMD GPUs specified")).toThrow(/not JSON/);
    expect(() => parseRocmSmiGpus("[1,2]")).toThrow(/not a JSON object/);
    expect(() => parseRocmSmiGpus('{"card0": "x"}')).toThrow(/card0 is not an object/);
    expect(() => parseRocmSmiGpus('{"card0": {"GPU use (%)": "1"}}')).toThrow(
      /neither a product name nor VRAM/,
    );
    expect(() => parseRocmSmiGpus('{"card0": {"VRAM Total Memory (B)": "lots"}}')).toThrow(/not a number/);
  });
});
