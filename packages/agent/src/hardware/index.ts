export {
  AMD_SMI_METRIC_ARGS,
  AMD_SMI_STATIC_ARGS,
  parseAmdSmiMetric,
  parseAmdSmiStatic,
} from "./amd-smi.ts";
export { cpuModelFromOs, parseCpuInfoModel } from "./cpu.ts";
export { type DetectOptions, detectHardware } from "./detect.ts";
export { type Host, nodeFiles, nodeHost } from "./host.ts";
export { INTEL_PCI_VENDOR, intelGpus } from "./intel.ts";
export {
  NVIDIA_GPU_FIELDS,
  NVIDIA_USAGE_FIELDS,
  nvidiaSmiQueryArgs,
  parseNvidiaSmiGpus,
  parseNvidiaSmiUsage,
  readNvidiaSmiCsv,
} from "./nvidia-smi.ts";
export {
  type DrmCard,
  type FileReader,
  isDisplayDevice,
  type LspciDevice,
  parseLspci,
  readDrmCards,
  sameSlot,
} from "./pci.ts";
export { parseRocmSmiGpus, parseRocmSmiUsage, ROCM_SMI_GPU_ARGS, ROCM_SMI_USAGE_ARGS } from "./rocm-smi.ts";
export {
  type CommandResult,
  type CommandRunner,
  createExecFileRunner,
  type ExecFileRunnerOptions,
  execFileRunner,
} from "./runner.ts";
export {
  parseSysctlInteger,
  parseSysctlValue,
  SYSCTL_CPU_BRAND,
  SYSCTL_LOGICAL_CPUS,
  SYSCTL_MEMORY_BYTES,
} from "./sysctl.ts";
export {
  type DisplayAdapter,
  macGpus,
  parseSystemProfilerDisplays,
  SYSTEM_PROFILER_DISPLAYS_ARGS,
} from "./system-profiler.ts";
export { UsageSampler, type UsageSamplerOptions } from "./usage-sampler.ts";
