import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { intelGpus } from "./intel.ts";
import { parseLspci } from "./pci.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");
const GIB = 1024 ** 3;

describe("Intel GPUs", () => {
  it("names the integrated GPU from a recorded lspci and gives it the system's memory", () => {
    const cards = [
      { card: "card0", vendorId: "0x8086", deviceId: "0x4680", slot: "0000:00:02.0" },
      { card: "card1", vendorId: "0x10de", deviceId: "0x2208", slot: "0000:01:00.0" },
    ];
    const gpus = intelGpus(cards, parseLspci(recorded("lspci-display-alderlake-rtx3080ti.txt")), 32 * GIB);
    expect(gpus).toEqual([
      {
        index: 0,
        vendor: "intel",
        name: "Intel AlderLake-S GT1",
        memory_total_bytes: 32 * GIB,
        unified_memory: true,
        backend: "vulkan",
      },
    ]);
  });

  it("documented format: a discrete card off bus 00 without lspci is named by PCI id, memory unknown", () => {
    const gpus = intelGpus(
      [{ card: "card1", vendorId: "0x8086", deviceId: "0x56a0", slot: "0000:03:00.0" }],
      [],
      32 * GIB,
    );
    expect(gpus).toEqual([
      {
        index: 0,
        vendor: "intel",
        name: "Intel GPU [8086:56a0]",
        memory_total_bytes: 0,
        unified_memory: false,
        backend: "vulkan",
      },
    ]);
  });
});
