import type { CpuInfo } from "node:os";
import type { Hardware, Usage } from "@beta9/protocol";
import { AMD_SMI_METRIC_ARGS, parseAmdSmiMetric } from "./amd-smi.ts";
import { type Host, nodeHost } from "./host.ts";
import { NVIDIA_USAGE_FIELDS, nvidiaSmiQueryArgs, parseNvidiaSmiUsage } from "./nvidia-smi.ts";
import { parseRocmSmiUsage, ROCM_SMI_USAGE_ARGS } from "./rocm-smi.ts";
import { type CommandRunner, execFileRunner } from "./runner.ts";

type UsageGpu = Usage["gpus"][number];

export interface UsageSamplerOptions {
  run?: CommandRunner;
  host?: Partial<Pick<Host, "cpus" | "totalMemoryBytes" | "freeMemoryBytes">>;
  onProblem?: (source: string, error: unknown) => void;
}

interface CpuTimes {
  busy: number;
  total: number;
}

function cpuTimes(cpus: readonly CpuInfo[]): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

/**
 * Measures what changes between heartbeats. CPU load is the share of non-idle time since the
 * previous sample (the first sample measures from construction). GPU figures come from one query
 * per detected vendor per sample; Apple and Intel GPUs have no cheap query, so they report only
 * their index.
 */
export class UsageSampler {
  readonly #hardware: Hardware;
  readonly #run: CommandRunner;
  readonly #host: Pick<Host, "cpus" | "totalMemoryBytes" | "freeMemoryBytes">;
  readonly #onProblem: (source: string, error: unknown) => void;
  #previousCpu: CpuTimes;
  /** Which AMD tool answered last time, so later samples ask only that one. */
  #amdTool: "rocm-smi" | "amd-smi" | undefined;

  constructor(hardware: Hardware, options: UsageSamplerOptions = {}) {
    this.#hardware = hardware;
    this.#run = options.run ?? execFileRunner;
    this.#host = { ...nodeHost(), ...options.host };
    this.#onProblem = options.onProblem ?? (() => {});
    this.#previousCpu = cpuTimes(this.#host.cpus());
  }

  async sample(): Promise<Usage> {
    const [nvidia, amd] = await Promise.all([this.#nvidiaUsage(), this.#amdUsage()]);
    const measured = { nvidia, amd } as const;
    const gpus = this.#hardware.gpus.map((gpu): UsageGpu => {
      const byVendor = gpu.vendor === "nvidia" || gpu.vendor === "amd" ? measured[gpu.vendor] : [];
      return byVendor.find((entry) => entry.index === gpu.index) ?? { index: gpu.index };
    });
    const total = this.#host.totalMemoryBytes();
    return {
      cpu_percent: this.#cpuPercent(),
      memory_used_bytes: Math.max(0, total - this.#host.freeMemoryBytes()),
      memory_total_bytes: total,
      gpus,
    };
  }

  #cpuPercent(): number {
    const now = cpuTimes(this.#host.cpus());
    const busy = now.busy - this.#previousCpu.busy;
    const total = now.total - this.#previousCpu.total;
    this.#previousCpu = now;
    if (total <= 0) return 0;
    return Math.min(100, Math.max(0, (busy / total) * 100));
  }

  #has(vendor: Hardware["gpus"][number]["vendor"]): boolean {
    return this.#hardware.gpus.some((gpu) => gpu.vendor === vendor);
  }

  async #query<T>(
    source: string,
    cmd: string,
    args: string[],
    parse: (stdout: string) => T,
  ): Promise<T | undefined> {
    try {
      const result = await this.#run(cmd, args);
      return result === null ? undefined : parse(result.stdout);
    } catch (error) {
      this.#onProblem(source, error);
      return undefined;
    }
  }

  async #nvidiaUsage(): Promise<UsageGpu[]> {
    if (!this.#has("nvidia")) return [];
    const args = nvidiaSmiQueryArgs(NVIDIA_USAGE_FIELDS);
    return (await this.#query("nvidia-smi", "nvidia-smi", args, (out) => parseNvidiaSmiUsage(out))) ?? [];
  }

  async #amdUsage(): Promise<UsageGpu[]> {
    if (!this.#has("amd")) return [];
    if (this.#amdTool !== "amd-smi") {
      const fromRocm = await this.#query("rocm-smi", "rocm-smi", ROCM_SMI_USAGE_ARGS, parseRocmSmiUsage);
      if (fromRocm !== undefined) {
        this.#amdTool = "rocm-smi";
        return fromRocm;
      }
      if (this.#amdTool === "rocm-smi") return [];
    }
    const fromAmdSmi = await this.#query("amd-smi", "amd-smi", AMD_SMI_METRIC_ARGS, parseAmdSmiMetric);
    if (fromAmdSmi !== undefined) this.#amdTool = "amd-smi";
    return fromAmdSmi ?? [];
  }
}
