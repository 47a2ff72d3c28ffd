import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  NVIDIA_GPU_FIELDS,
  nvidiaSmiQueryArgs,
  parseNvidiaSmiGpus,
  parseNvidiaSmiUsage,
  readNvidiaSmiCsv,
} from "./nvidia-smi.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");
const MIB = 1024 * 1024;

describe("nvidia-smi inventory", () => {
  it("asks for exactly the documented query, without header or units", () => {
    expect(nvidiaSmiQueryArgs(NVIDIA_GPU_FIELDS)).toEqual([
      "--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu,driver_version",
      "--format=csv,noheader,nounits",
    ]);
  });

  it("reads the recorded idle H100 (header, units, 212 columns, many [N/A] cells)", () => {
    const gpus = parseNvidiaSmiGpus(recorded("nvidia-smi-h100-idle.csv"));
    expect(gpus).toEqual([
      {
        index: 0,
        vendor: "nvidia",
        name: "NVIDIA H100 80GB HBM3",
        memory_total_bytes: 81559 * MIB,
        memory_used_bytes: 0,
        utilization_percent: 0,
        unified_memory: false,
        driver_version: "590.48.01",
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        backend: "cuda",
      },
    ]);
    expect(gpus[0]!.memory_total_bytes).toBe(85_520_809_984);
  });

  it("reads the recorded H100 under load: 19818 MiB used, 100 % busy", () => {
    const [gpu] = parseNvidiaSmiGpus(recorded("nvidia-smi-h100-load.csv"));
    expect(gpu!.memory_used_bytes).toBe(19818 * MIB);
    expect(gpu!.utilization_percent).toBe(100);
    expect(gpu!.memory_total_bytes).toBe(81559 * MIB);
  });

  it("treats [N/A], [Not Supported] and deprecated cells as missing, keeping the rest of the row", () => {
    const [row] = readNvidiaSmiCsv(recorded("nvidia-smi-h100-idle.csv"), []);
    expect(row!.size).toBe(212);
    expect(row!.get("vgpu_driver_capability.heterogenous_multivGPU")).toBeUndefined();
    expect(row!.get("display_mode")).toBeUndefined(); // "[Requested functionality has been deprecated]"
    expect(row!.get("fabric.health.summary")).toBeUndefined(); // bare "N/A"
    expect(row!.get("platform.chassis_serial_number")).toBeUndefined(); // empty cell
    expect(row!.get("memory.total")).toBe("81559 MiB");
  });

  it("documented format: multi-GPU rows with the agent's own query, a missing utilization and memory", () => {
    const text = [
      "0, NVIDIA GeForce RTX 4090, GPU-a, 24564, 1024, 37, 550.54.15",
      "1, NVIDIA GB10, GPU-b, [N/A], [N/A], [Not Supported], 580.95.05",
    ].join("\n");
    const gpus = parseNvidiaSmiGpus(text);
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1]);
    expect(gpus[0]).toMatchObject({
      memory_total_bytes: 24564 * MIB,
      memory_used_bytes: 1024 * MIB,
      utilization_percent: 37,
    });
    expect(gpus[1]!.memory_total_bytes).toBe(0);
    expect(gpus[1]).not.toHaveProperty("memory_used_bytes");
    expect(gpus[1]).not.toHaveProperty("utilization_percent");
  });

  it("returns no GPUs for empty output", () => {
    expect(parseNvidiaSmiGpus("")).toEqual([]);
    expect(parseNvidiaSmiGpus("\n\n")).toEqual([]);
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseNvidiaSmiGpus("No devices were found")).toThrow(/has 1 fields, expected 7/);
    expect(() => parseNvidiaSmiGpus("0, NVIDIA A100, GPU-x, lots, 0, 0, 535.0")).toThrow(
      /memory.total .* not a number/,
    );
    expect(() => parseNvidiaSmiGpus("x, NVIDIA A100, GPU-x, 100, 0, 0, 535.0")).toThrow(
      /index .* not a number/,
    );
    // A header without a name column cannot describe a GPU.
    expect(() => parseNvidiaSmiGpus("index, memory.total [MiB]\n0, 100 MiB")).toThrow(/no name/);
  });
});

describe("nvidia-smi usage", () => {
  it("reads memory and utilization from the recorded H100 under load", () => {
    expect(parseNvidiaSmiUsage(recorded("nvidia-smi-h100-load.csv"))).toEqual([
      { index: 0, memory_used_bytes: 19818 * MIB, utilization_percent: 100 },
    ]);
  });

  it("reads recorded rows that carry [N/A] and [Not Supported] cells (2 GB card, two driver versions)", () => {
    const fields = [
      "memory.total",
      "memory.free",
      "memory.used",
      "temperature.gpu",
      "fan.speed",
      "utilization.gpu",
      "utilization.memory",
    ];
    for (const file of [
      "nvidia-smi-memory-util-2gb-na.csv",
      "nvidia-smi-memory-util-2gb-not-supported.csv",
    ]) {
      expect(parseNvidiaSmiUsage(recorded(file), fields)).toEqual([
        { index: 0, memory_used_bytes: 0, utilization_percent: 0 },
      ]);
      expect(readNvidiaSmiCsv(recorded(file), fields)[0]!.get("fan.speed")).toBeUndefined();
    }
  });

  it("throws on garbage", () => {
    expect(() => parseNvidiaSmiUsage("Failed to initialize NVML: Driver/library version mismatch")).toThrow(
      /expected 3/,
    );
  });
});
