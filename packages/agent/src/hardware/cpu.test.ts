import { readFileSync } from "node:fs";
import type { CpuInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { cpuModelFromOs, parseCpuInfoModel } from "./cpu.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");
const cpu = (model: string): CpuInfo => ({
  model,
  speed: 0,
  times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 },
});

describe("CPU model", () => {
  it("reads 'model name' from a recorded /proc/cpuinfo (2-vCPU AMD EPYC VM)", () => {
    expect(parseCpuInfoModel(recorded("proc-cpuinfo-epyc-2vcpu.txt"))).toBe("AMD EPYC");
  });

  it("documented format: ARM cpuinfo has no model name, so the caller falls back", () => {
    const arm =
      "processor\t: 0\nBogoMIPS\t: 2000.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n";
    expect(parseCpuInfoModel(arm)).toBeUndefined();
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseCpuInfoModel("")).toThrow(/no 'key : value' lines/);
    expect(() => parseCpuInfoModel("<html>nope</html>")).toThrow(/no 'key : value' lines/);
  });

  it("falls back to os.cpus(), skipping empty models", () => {
    expect(cpuModelFromOs([cpu(""), cpu("Neoverse-V2")])).toBe("Neoverse-V2");
    expect(cpuModelFromOs([])).toBe("unknown");
  });
});
