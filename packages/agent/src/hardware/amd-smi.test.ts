import { describe, expect, it } from "vitest";
import { parseAmdSmiMetric, parseAmdSmiStatic } from "./amd-smi.ts";

// No recorded `amd-smi ... --json` output with a citable source was found (see testdata SOURCES.md);
// these inputs follow the documented JSON shape and are not recordings.
describe("amd-smi (documented format)", () => {
  it("documented format: reads market name and VRAM size from `amd-smi static --json`", () => {
    const text = JSON.stringify([
      {
        gpu: 0,
        asic: { market_name: "AMD Instinct MI300X", vendor_id: "0x1002" },
        vram: { type: "HBM", size: { value: 196592, unit: "MB" } },
        driver: { name: "amdgpu", version: "6.8.5" },
      },
      { gpu: 1, asic: { market_name: "AMD Instinct MI300X" }, vram: { size: 196592 } },
    ]);
    const gpus = parseAmdSmiStatic(text);
    expect(gpus).toEqual([
      {
        index: 0,
        vendor: "amd",
        name: "AMD Instinct MI300X",
        memory_total_bytes: 196592 * 1024 * 1024,
        unified_memory: false,
        backend: "rocm",
        driver_version: "6.8.5",
      },
      {
        index: 1,
        vendor: "amd",
        name: "AMD Instinct MI300X",
        memory_total_bytes: 196592 * 1024 * 1024,
        unified_memory: false,
        backend: "rocm",
      },
    ]);
  });

  it("documented format: accepts the gpu_data wrapper of newer releases", () => {
    const text = JSON.stringify({
      gpu_data: [{ gpu: 0, asic: { market_name: "Radeon RX 7900 XTX" }, vram: { size: "24560 MB" } }],
    });
    expect(parseAmdSmiStatic(text)[0]).toMatchObject({
      name: "Radeon RX 7900 XTX",
      memory_total_bytes: 24560 * 1024 * 1024,
    });
  });

  it("documented format: reads gfx activity and used VRAM from `amd-smi metric --json`", () => {
    const text = JSON.stringify([
      {
        gpu: 0,
        usage: { gfx_activity: { value: 42, unit: "%" } },
        mem_usage: { used_vram: { value: 1024, unit: "MB" } },
      },
      { gpu: 1, usage: { gfx_activity: "N/A" }, mem_usage: { used_vram: "N/A" } },
    ]);
    expect(parseAmdSmiMetric(text)).toEqual([
      { index: 0, utilization_percent: 42, memory_used_bytes: 1024 * 1024 * 1024 },
      { index: 1 },
    ]);
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseAmdSmiStatic("amd-smi: command failed")).toThrow(/not JSON/);
    expect(() => parseAmdSmiStatic('{"cpu_data": []}')).toThrow(/no GPU list/);
    expect(() => parseAmdSmiStatic("[42]")).toThrow(/entry 0 is not an object/);
    expect(() => parseAmdSmiStatic('[{"gpu": 0}]')).toThrow(/neither asic.market_name nor vram.size/);
    expect(() =>
      parseAmdSmiStatic('[{"gpu": 0, "vram": {"size": {"value": 1, "unit": "parsecs"}}}]'),
    ).toThrow(/unit "parsecs"/);
    expect(() => parseAmdSmiMetric("{}")).toThrow(/no GPU list/);
  });
});
