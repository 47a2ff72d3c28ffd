import { readFileSync } from "node:fs";
import type { CpuInfo } from "node:os";
import type { Hardware } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import type { CommandRunner } from "./runner.ts";
import { UsageSampler } from "./usage-sampler.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** Two cores whose counters the test advances by hand. */
function fakeCpus() {
  const times = [
    { user: 1000, nice: 0, sys: 500, idle: 8500, irq: 0 },
    { user: 1000, nice: 0, sys: 500, idle: 8500, irq: 0 },
  ];
  return {
    cpus: (): CpuInfo[] => times.map((t) => ({ model: "x", speed: 0, times: { ...t } })),
    spend(busy: number, idle: number) {
      for (const t of times) {
        t.user += busy;
        t.idle += idle;
      }
    },
  };
}

const machine = (gpus: Hardware["gpus"]): Hardware => ({
  os: "linux",
  arch: "x64",
  cpu_model: "x",
  cpu_cores: 2,
  memory_total_bytes: 16 * GIB,
  gpus,
});
const h100: Hardware["gpus"][number] = {
  index: 0,
  vendor: "nvidia",
  name: "NVIDIA H100 80GB HBM3",
  memory_total_bytes: 81559 * MIB,
  unified_memory: false,
};

describe("UsageSampler", () => {
  it("measures CPU load between samples and memory from the OS", async () => {
    const cpu = fakeCpus();
    let free = 12 * GIB;
    const sampler = new UsageSampler(machine([]), {
      run: async () => null,
      host: { cpus: cpu.cpus, totalMemoryBytes: () => 16 * GIB, freeMemoryBytes: () => free },
    });
    cpu.spend(300, 100); // 75 % busy since construction
    expect(await sampler.sample()).toEqual({
      cpu_percent: 75,
      memory_used_bytes: 4 * GIB,
      memory_total_bytes: 16 * GIB,
      gpus: [],
    });
    cpu.spend(0, 500);
    free = 15 * GIB;
    expect(await sampler.sample()).toMatchObject({ cpu_percent: 0, memory_used_bytes: 1 * GIB });
    expect((await sampler.sample()).cpu_percent).toBe(0); // no time passed: no division by zero
  });

  it("fills NVIDIA usage from one nvidia-smi call per sample (recorded H100 under load)", async () => {
    const calls: string[][] = [];
    const run: CommandRunner = async (cmd, args) => {
      calls.push([cmd, ...args]);
      return cmd === "nvidia-smi" ? { stdout: recorded("nvidia-smi-h100-load.csv") } : null;
    };
    const sampler = new UsageSampler(machine([h100]), { run });
    const usage = await sampler.sample();
    expect(usage.gpus).toEqual([{ index: 0, memory_used_bytes: 19818 * MIB, utilization_percent: 100 }]);
    expect(calls).toEqual([
      ["nvidia-smi", "--query-gpu=index,memory.used,utilization.gpu", "--format=csv,noheader,nounits"],
    ]);
  });

  it("asks no tool when there is no GPU whose vendor has one", async () => {
    const calls: string[][] = [];
    const apple: Hardware["gpus"][number] = {
      index: 0,
      vendor: "apple",
      name: "Apple M2 Ultra",
      memory_total_bytes: 192 * GIB,
      unified_memory: true,
    };
    const sampler = new UsageSampler(machine([apple]), {
      run: async (cmd, args) => {
        calls.push([cmd, ...args]);
        return null;
      },
    });
    expect((await sampler.sample()).gpus).toEqual([{ index: 0 }]);
    expect(calls).toEqual([]);
  });

  it("reads AMD usage from rocm-smi (recorded RX 7900 XT) and sticks to the tool that answered", async () => {
    const calls: string[] = [];
    const radeon: Hardware["gpus"][number] = {
      index: 0,
      vendor: "amd",
      name: "Radeon RX 7900 XT",
      memory_total_bytes: 21_458_059_264,
      unified_memory: false,
    };
    const sampler = new UsageSampler(machine([radeon]), {
      run: async (cmd) => {
        calls.push(cmd);
        return cmd === "rocm-smi" ? { stdout: recorded("rocm-smi-rx7900xt.json") } : null;
      },
    });
    expect((await sampler.sample()).gpus).toEqual([
      { index: 0, memory_used_bytes: 27_856_896, utilization_percent: 0 },
    ]);
    await sampler.sample();
    expect(calls).toEqual(["rocm-smi", "rocm-smi"]);
  });

  it("falls back to amd-smi and remembers it (documented format)", async () => {
    const calls: string[] = [];
    const mi300x: Hardware["gpus"][number] = {
      index: 0,
      vendor: "amd",
      name: "AMD Instinct MI300X",
      memory_total_bytes: 0,
      unified_memory: false,
    };
    const metric = JSON.stringify([
      {
        gpu: 0,
        usage: { gfx_activity: { value: 12, unit: "%" } },
        mem_usage: { used_vram: { value: 2048, unit: "MB" } },
      },
    ]);
    const sampler = new UsageSampler(machine([mi300x]), {
      run: async (cmd) => {
        calls.push(cmd);
        return cmd === "amd-smi" ? { stdout: metric } : null;
      },
    });
    expect((await sampler.sample()).gpus).toEqual([
      { index: 0, utilization_percent: 12, memory_used_bytes: 2 * GIB },
    ]);
    await sampler.sample();
    expect(calls).toEqual(["rocm-smi", "amd-smi", "amd-smi"]);
  });

  it("keeps sampling when the GPU tool vanishes, prints garbage or throws", async () => {
    const problems: string[] = [];
    let answer: () => Promise<{ stdout: string } | null> = async () => null;
    const sampler = new UsageSampler(machine([h100]), {
      run: () => answer(),
      onProblem: (source) => problems.push(source),
    });
    expect((await sampler.sample()).gpus).toEqual([{ index: 0 }]);
    answer = async () => ({
      stdout: "Unable to determine the device handle for GPU0000:00:09.0: Unknown Error",
    });
    expect((await sampler.sample()).gpus).toEqual([{ index: 0 }]);
    answer = async () => {
      throw new Error("spawn EAGAIN");
    };
    expect((await sampler.sample()).gpus).toEqual([{ index: 0 }]);
    expect(problems).toEqual(["nvidia-smi", "nvidia-smi"]);
  });
});
