import { describe, expect, it } from "vitest";
import { macGpus, parseSystemProfilerDisplays } from "./system-profiler.ts";

const GIB = 1024 ** 3;

// No complete `system_profiler SPDisplaysDataType -json` output with a citable source was found
// (only truncated pastes; see testdata SOURCES.md). These inputs use the keys those pastes show.
describe("system_profiler (documented format)", () => {
  const appleSilicon = JSON.stringify({
    SPDisplaysDataType: [
      {
        _name: "Apple M2 Ultra",
        spdisplays_mtlgpufamilysupport: "spdisplays_metal3",
        spdisplays_ndrvs: [{ _name: "DELL U2722DE", _spdisplays_resolution: "2560 x 1440 @ 60.00Hz" }],
        spdisplays_vendor: "sppci_vendor_Apple",
        sppci_bus: "spdisplays_builtin",
        sppci_cores: "76",
        sppci_device_type: "spdisplays_gpu",
        sppci_model: "Apple M2 Ultra",
      },
    ],
  });

  it("documented format: reads the chip name and GPU core count, ignoring attached monitors", () => {
    expect(parseSystemProfilerDisplays(appleSilicon)).toEqual([
      { name: "Apple M2 Ultra", vendor: "apple", gpuCores: 76 },
    ]);
  });

  it("documented format: Apple GPUs report the unified memory (hw.memsize), backend metal", () => {
    expect(macGpus(parseSystemProfilerDisplays(appleSilicon), 192 * GIB)).toEqual([
      {
        index: 0,
        vendor: "apple",
        name: "Apple M2 Ultra",
        memory_total_bytes: 192 * GIB,
        unified_memory: true,
        backend: "metal",
      },
    ]);
  });

  it("documented format: prefers sppci_model over an internal _name token", () => {
    const text = JSON.stringify({
      SPDisplaysDataType: [
        {
          _name: "kHW_AppleM1Item",
          spdisplays_vendor: "sppci_vendor_Apple",
          sppci_cores: "7",
          sppci_model: "Apple M1",
        },
      ],
    });
    expect(parseSystemProfilerDisplays(text)).toEqual([{ name: "Apple M1", vendor: "apple", gpuCores: 7 }]);
  });

  it("documented format: an Intel Mac lists its integrated and discrete GPUs with their own memory", () => {
    const text = JSON.stringify({
      SPDisplaysDataType: [
        {
          _name: "Intel UHD Graphics 630",
          sppci_model: "Intel UHD Graphics 630",
          spdisplays_vram_shared: "1536 MB",
        },
        {
          _name: "AMD Radeon Pro 560X",
          sppci_model: "AMD Radeon Pro 560X",
          spdisplays_vendor: "sppci_vendor_amd",
          spdisplays_vram: "4 GB",
        },
      ],
    });
    const gpus = macGpus(parseSystemProfilerDisplays(text), 16 * GIB);
    expect(gpus.map((gpu) => [gpu.vendor, gpu.memory_total_bytes, gpu.unified_memory])).toEqual([
      ["intel", 1536 * 1024 * 1024, true],
      ["amd", 4 * GIB, false],
    ]);
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseSystemProfilerDisplays("Graphics/Displays:\n  Apple M3:")).toThrow(/not JSON/);
    expect(() => parseSystemProfilerDisplays('{"SPHardwareDataType": []}')).toThrow(/no SPDisplaysDataType/);
  });

  it("returns nothing for a headless machine with no graphics entries", () => {
    expect(parseSystemProfilerDisplays('{"SPDisplaysDataType": []}')).toEqual([]);
  });
});
