import type { Gpu, Hardware } from "@beta9/protocol";
import { AMD_SMI_STATIC_ARGS, parseAmdSmiStatic } from "./amd-smi.ts";
import { cpuModelFromOs, parseCpuInfoModel } from "./cpu.ts";
import { type Host, nodeHost } from "./host.ts";
import { INTEL_PCI_VENDOR, intelGpus } from "./intel.ts";
import { NVIDIA_GPU_FIELDS, nvidiaSmiQueryArgs, parseNvidiaSmiGpus } from "./nvidia-smi.ts";
import { parseLspci, readDrmCards } from "./pci.ts";
import { parseRocmSmiGpus, ROCM_SMI_GPU_ARGS } from "./rocm-smi.ts";
import { type CommandRunner, execFileRunner } from "./runner.ts";
import {
  parseSysctlInteger,
  parseSysctlValue,
  SYSCTL_CPU_BRAND,
  SYSCTL_LOGICAL_CPUS,
  SYSCTL_MEMORY_BYTES,
} from "./sysctl.ts";
import { macGpus, parseSystemProfilerDisplays, SYSTEM_PROFILER_DISPLAYS_ARGS } from "./system-profiler.ts";

export interface DetectOptions {
  /** Defaults to the machine this runs on. */
  host?: Partial<Host>;
  /** Told about each tool whose output could not be used; detection goes on without it. */
  onProblem?: (source: string, error: unknown) => void;
}

type Problem = NonNullable<DetectOptions["onProblem"]>;

/** Runs one probe; whatever goes wrong becomes "found nothing" plus a report. */
async function attempt<T>(
  source: string,
  fallback: T,
  onProblem: Problem,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    onProblem(source, error);
    return fallback;
  }
}

/** Runs a tool and parses its output; a missing tool is not a problem, just absent hardware. */
async function tool<T>(
  run: CommandRunner,
  cmd: string,
  args: string[],
  parse: (stdout: string) => T,
): Promise<T | undefined> {
  const result = await run(cmd, args);
  return result === null ? undefined : parse(result.stdout);
}

async function nvidiaGpus(run: CommandRunner): Promise<Gpu[]> {
  return (await tool(run, "nvidia-smi", nvidiaSmiQueryArgs(NVIDIA_GPU_FIELDS), parseNvidiaSmiGpus)) ?? [];
}

async function amdGpus(run: CommandRunner): Promise<Gpu[]> {
  const fromRocmSmi = await tool(run, "rocm-smi", ROCM_SMI_GPU_ARGS, parseRocmSmiGpus);
  if (fromRocmSmi !== undefined) return fromRocmSmi;
  return (await tool(run, "amd-smi", AMD_SMI_STATIC_ARGS, parseAmdSmiStatic)) ?? [];
}

async function linuxIntelGpus(run: CommandRunner, host: Host, onProblem: Problem): Promise<Gpu[]> {
  const cards = await readDrmCards(host.files, host.sysRoot);
  if (!cards.some((card) => card.vendorId === INTEL_PCI_VENDOR)) return [];
  // Names are a nicety: without lspci the GPU is still listed, by PCI id.
  const devices = await attempt(
    "lspci",
    [],
    onProblem,
    async () => (await tool(run, "lspci", [], parseLspci)) ?? [],
  );
  return intelGpus(cards, devices, host.totalMemoryBytes());
}

async function linuxCpuModel(host: Host): Promise<string | undefined> {
  const cpuinfo = await host.files.readFile(`${host.procRoot}/cpuinfo`);
  return cpuinfo === null ? undefined : parseCpuInfoModel(cpuinfo);
}

async function detectLinux(run: CommandRunner, host: Host, onProblem: Problem) {
  const [cpuModel, nvidia, amd, intel] = await Promise.all([
    attempt("/proc/cpuinfo", undefined, onProblem, () => linuxCpuModel(host)),
    attempt("nvidia-smi", [], onProblem, () => nvidiaGpus(run)),
    attempt("rocm-smi/amd-smi", [], onProblem, () => amdGpus(run)),
    attempt("intel sysfs", [], onProblem, () => linuxIntelGpus(run, host, onProblem)),
  ]);
  return {
    cpu_model: cpuModel ?? cpuModelFromOs(host.cpus()),
    cpu_cores: host.cpus().length,
    memory_total_bytes: host.totalMemoryBytes(),
    gpus: [...nvidia, ...amd, ...intel],
  };
}

async function detectMac(run: CommandRunner, host: Host, onProblem: Problem) {
  const sysctl = <T>(key: string, parse: (text: string, key: string) => T) =>
    attempt(`sysctl ${key}`, undefined, onProblem, () =>
      tool(run, "sysctl", ["-n", key], (out) => parse(out, key)),
    );
  const [brand, memory, cores, adapters] = await Promise.all([
    sysctl(SYSCTL_CPU_BRAND, parseSysctlValue),
    sysctl(SYSCTL_MEMORY_BYTES, parseSysctlInteger),
    sysctl(SYSCTL_LOGICAL_CPUS, parseSysctlInteger),
    attempt("system_profiler", [], onProblem, async () => {
      return (
        (await tool(run, "system_profiler", SYSTEM_PROFILER_DISPLAYS_ARGS, parseSystemProfilerDisplays)) ?? []
      );
    }),
  ]);
  const memoryBytes = memory ?? host.totalMemoryBytes();
  return {
    cpu_model: brand ?? cpuModelFromOs(host.cpus()),
    cpu_cores: cores ?? host.cpus().length,
    memory_total_bytes: memoryBytes,
    gpus: macGpus(adapters, memoryBytes),
  };
}

/** Other systems (Windows): nvidia-smi ships with the driver there too. */
async function detectOther(run: CommandRunner, host: Host, onProblem: Problem) {
  return {
    cpu_model: cpuModelFromOs(host.cpus()),
    cpu_cores: host.cpus().length,
    memory_total_bytes: host.totalMemoryBytes(),
    gpus: await attempt("nvidia-smi", [], onProblem, () => nvidiaGpus(run)),
  };
}

const clip = (value: string, max: number) => (value.length > max ? value.slice(0, max) : value);

/** Keeps tool output inside the wire schema's limits, so odd hardware never breaks a heartbeat. */
function withinSchema(hardware: Hardware): Hardware {
  return {
    ...hardware,
    os: clip(hardware.os, 64),
    arch: clip(hardware.arch, 64),
    cpu_model: clip(hardware.cpu_model, 256),
    gpus: hardware.gpus.slice(0, 64).map((gpu) => {
      const fitted: Gpu = { ...gpu, name: clip(gpu.name, 256) };
      if (gpu.driver_version !== undefined) fitted.driver_version = clip(gpu.driver_version, 128);
      if (gpu.uuid !== undefined) fitted.uuid = clip(gpu.uuid, 128);
      if (gpu.backend !== undefined) fitted.backend = clip(gpu.backend, 32);
      return fitted;
    }),
  };
}

/**
 * Finds what this machine offers: CPU, memory and GPUs. Each vendor tool is tried through `run`;
 * a tool that is missing, slow or prints something unexpected only means fewer GPUs, never an error.
 */
export async function detectHardware(
  run: CommandRunner = execFileRunner,
  options: DetectOptions = {},
): Promise<Hardware> {
  const host: Host = { ...nodeHost(), ...options.host };
  const onProblem: Problem = options.onProblem ?? (() => {});
  // The runner is injected code: a throwing runner must not escape either.
  const safeRun: CommandRunner = async (cmd, args) => {
    try {
      return await run(cmd, args);
    } catch (error) {
      onProblem(cmd, error);
      return null;
    }
  };
  const found =
    host.platform === "darwin"
      ? await detectMac(safeRun, host, onProblem)
      : host.platform === "linux"
        ? await detectLinux(safeRun, host, onProblem)
        : await detectOther(safeRun, host, onProblem);
  return withinSchema({ os: host.platform, arch: host.arch, ...found });
}
