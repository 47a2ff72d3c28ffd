import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { CpuInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hardware } from "@beta9/protocol";
import { Value } from "typebox/value";
import { afterEach, describe, expect, it } from "vitest";
import { detectHardware } from "./detect.ts";
import type { Host } from "./host.ts";
import { nodeFiles } from "./host.ts";
import type { CommandRunner } from "./runner.ts";
import { fakeSysfs } from "./testing/sysfs.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const cpus = (count: number, model = "Test CPU"): CpuInfo[] =>
  Array.from({ length: count }, () => ({
    model,
    speed: 0,
    times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 },
  }));

/** A runner that answers from a table keyed by tool name; anything else is "not installed". */
function runnerFrom(outputs: Record<string, string>, calls: string[][] = []): CommandRunner {
  return async (cmd, args) => {
    calls.push([cmd, ...args]);
    const key = cmd === "sysctl" ? `sysctl ${args.at(-1)}` : cmd;
    const stdout = outputs[key];
    return stdout === undefined ? null : { stdout };
  };
}

const noTools: CommandRunner = async () => null;

describe("detectHardware on Linux", () => {
  const roots: string[] = [];
  afterEach(async () => {
    await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
  });

  async function linuxHost(sysRoot: string): Promise<Partial<Host>> {
    const procRoot = await mkdtemp(join(tmpdir(), "b9-proc-"));
    roots.push(procRoot);
    await writeFile(join(procRoot, "cpuinfo"), recorded("proc-cpuinfo-epyc-2vcpu.txt"));
    return {
      platform: "linux",
      arch: "x64",
      cpus: () => cpus(2, "from os.cpus"),
      totalMemoryBytes: () => 64 * GIB,
      files: nodeFiles,
      sysRoot,
      procRoot,
    };
  }

  it("combines recorded NVIDIA, AMD and Intel outputs into one Hardware that fits the wire schema", async () => {
    const sysRoot = await fakeSysfs({ card0: { vendor: "0x8086", device: "0x4680", slot: "0000:00:02.0" } });
    roots.push(sysRoot);
    const calls: string[][] = [];
    const run = runnerFrom(
      {
        // Recorded with a wider query and a header; the parser follows the header.
        "nvidia-smi": recorded("nvidia-smi-h100-idle.csv"),
        "rocm-smi": recorded("rocm-smi-rx7900xt.json"),
        lspci: recorded("lspci-display-alderlake-rtx3080ti.txt"),
      },
      calls,
    );
    const hardware = await detectHardware(run, { host: await linuxHost(sysRoot) });
    expect(hardware).toMatchObject({
      os: "linux",
      arch: "x64",
      cpu_model: "AMD EPYC",
      cpu_cores: 2,
      memory_total_bytes: 64 * GIB,
    });
    expect(
      hardware.gpus.map((gpu) => [gpu.vendor, gpu.index, gpu.name, gpu.memory_total_bytes, gpu.backend]),
    ).toEqual([
      ["nvidia", 0, "NVIDIA H100 80GB HBM3", 81559 * MIB, "cuda"],
      ["amd", 0, "Radeon RX 7900 XT", 21_458_059_264, "rocm"],
      ["intel", 0, "Intel AlderLake-S GT1", 64 * GIB, "vulkan"],
    ]);
    expect(Value.Check(Hardware, hardware)).toBe(true);
    expect(calls).toContainEqual([
      "nvidia-smi",
      "--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu,driver_version",
      "--format=csv,noheader,nounits",
    ]);
    expect(calls).toContainEqual([
      "rocm-smi",
      "--showproductname",
      "--showmeminfo",
      "vram",
      "--showuse",
      "--json",
    ]);
    // rocm-smi answered, so amd-smi is not asked.
    expect(calls.some(([cmd]) => cmd === "amd-smi")).toBe(false);
  });

  it("falls back to amd-smi when rocm-smi is missing (documented format)", async () => {
    const run = runnerFrom({
      "amd-smi": JSON.stringify([
        {
          gpu: 0,
          asic: { market_name: "AMD Instinct MI300X" },
          vram: { size: { value: 196592, unit: "MB" } },
        },
      ]),
    });
    const hardware = await detectHardware(run, { host: await linuxHost("/nonexistent-sysfs") });
    expect(hardware.gpus).toEqual([expect.objectContaining({ vendor: "amd", name: "AMD Instinct MI300X" })]);
  });

  it("finds no GPUs, and does not throw, when no tool is installed", async () => {
    const hardware = await detectHardware(noTools, { host: await linuxHost("/nonexistent-sysfs") });
    expect(hardware).toEqual({
      os: "linux",
      arch: "x64",
      cpu_model: "AMD EPYC",
      cpu_cores: 2,
      memory_total_bytes: 64 * GIB,
      gpus: [],
    });
  });

  it("keeps going when every tool prints garbage or the runner itself throws, and says why", async () => {
    const problems: string[] = [];
    const garbage = runnerFrom({
      "nvidia-smi": "NVIDIA-SMI has failed",
      "rocm-smi": "<html>",
      "amd-smi": "oops",
    });
    const hardware = await detectHardware(garbage, {
      host: await linuxHost("/nonexistent-sysfs"),
      onProblem: (source) => problems.push(source),
    });
    expect(hardware.gpus).toEqual([]);
    expect(problems.sort()).toEqual(["nvidia-smi", "rocm-smi/amd-smi"]);

    const throwing: CommandRunner = async () => {
      throw new Error("spawn EACCES");
    };
    await expect(
      detectHardware(throwing, { host: await linuxHost("/nonexistent-sysfs") }),
    ).resolves.toMatchObject({ gpus: [] });
  });

  it("lists an Intel GPU by PCI id when lspci is missing", async () => {
    const sysRoot = await fakeSysfs({ card1: { vendor: "0x8086", device: "0x56a0", slot: "0000:03:00.0" } });
    roots.push(sysRoot);
    const hardware = await detectHardware(noTools, { host: await linuxHost(sysRoot) });
    expect(hardware.gpus).toEqual([
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

  it("uses os.cpus() when /proc/cpuinfo has no model name", async () => {
    const procRoot = await mkdtemp(join(tmpdir(), "b9-proc-"));
    roots.push(procRoot);
    await mkdir(procRoot, { recursive: true });
    await writeFile(join(procRoot, "cpuinfo"), "processor\t: 0\nCPU implementer\t: 0x41\n");
    const hardware = await detectHardware(noTools, {
      host: {
        platform: "linux",
        arch: "arm64",
        cpus: () => cpus(72, "Neoverse-V2"),
        totalMemoryBytes: () => GIB,
        procRoot,
        sysRoot: "/nonexistent",
      },
    });
    expect(hardware).toMatchObject({ cpu_model: "Neoverse-V2", cpu_cores: 72, arch: "arm64" });
  });
});

describe("detectHardware on macOS", () => {
  const host: Partial<Host> = {
    platform: "darwin",
    arch: "arm64",
    cpus: () => cpus(8, "from os.cpus"),
    totalMemoryBytes: () => 8 * GIB,
  };

  it("documented format: reads the chip, cores and unified memory from sysctl and system_profiler", async () => {
    const calls: string[][] = [];
    const run = runnerFrom(
      {
        "sysctl machdep.cpu.brand_string": "Apple M2 Ultra\n",
        "sysctl hw.memsize": "206158430208\n",
        "sysctl hw.ncpu": "24\n",
        system_profiler: JSON.stringify({
          SPDisplaysDataType: [
            {
              _name: "Apple M2 Ultra",
              spdisplays_vendor: "sppci_vendor_Apple",
              sppci_cores: "76",
              sppci_model: "Apple M2 Ultra",
            },
          ],
        }),
      },
      calls,
    );
    const hardware = await detectHardware(run, { host });
    expect(hardware).toEqual({
      os: "darwin",
      arch: "arm64",
      cpu_model: "Apple M2 Ultra",
      cpu_cores: 24,
      memory_total_bytes: 192 * GIB,
      gpus: [
        {
          index: 0,
          vendor: "apple",
          name: "Apple M2 Ultra",
          memory_total_bytes: 192 * GIB,
          unified_memory: true,
          backend: "metal",
        },
      ],
    });
    expect(calls).toContainEqual(["system_profiler", "SPDisplaysDataType", "-json"]);
    expect(calls).toContainEqual(["sysctl", "-n", "hw.memsize"]);
    // No Linux tools on a Mac.
    expect(calls.some(([cmd]) => cmd === "nvidia-smi" || cmd === "rocm-smi")).toBe(false);
  });

  it("reads the recorded M1 sysctl listing for the chip name", async () => {
    const run = runnerFrom({ "sysctl machdep.cpu.brand_string": recorded("sysctl-m1-machdep-cpu.txt") });
    expect((await detectHardware(run, { host })).cpu_model).toBe("Apple M1");
  });

  it("falls back to os values and no GPUs when sysctl and system_profiler are missing", async () => {
    expect(await detectHardware(noTools, { host })).toEqual({
      os: "darwin",
      arch: "arm64",
      cpu_model: "from os.cpus",
      cpu_cores: 8,
      memory_total_bytes: 8 * GIB,
      gpus: [],
    });
  });
});

describe("detectHardware elsewhere", () => {
  it("asks only nvidia-smi on Windows", async () => {
    const calls: string[][] = [];
    const hardware = await detectHardware(runnerFrom({}, calls), {
      host: { platform: "win32", arch: "x64", cpus: () => cpus(4), totalMemoryBytes: () => GIB },
    });
    expect(hardware.gpus).toEqual([]);
    expect(calls.map(([cmd]) => cmd)).toEqual(["nvidia-smi"]);
  });

  it("runs against this machine with the real runner without throwing", async () => {
    const hardware = await detectHardware();
    expect(Value.Check(Hardware, hardware)).toBe(true);
    expect(hardware.cpu_cores).toBeGreaterThan(0);
  });
});
