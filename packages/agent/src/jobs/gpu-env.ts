import type { Hardware } from "@beta9/protocol";

/** The variables every GPU runtime reads to pick its devices; a job's are all set, so none leaks in. */
const GPU_VARIABLES = ["CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"] as const;

/**
 * The environment that pins a job to the GPUs it was given (hardware.gpus[].index): NVIDIA by UUID
 * where known (CUDA's own order is fastest-first, not nvidia-smi's), AMD by index for both HIP and
 * ROCr. A CPU job sees no device at all. Apple's Metal has no such switch: a Mac's one GPU is shared.
 */
export function gpuEnvironment(hardware: Hardware, assigned: readonly number[]): Record<string, string> {
  const env: Record<string, string> = Object.fromEntries(GPU_VARIABLES.map((name) => [name, ""]));
  const gpus = assigned.map((index) => {
    const gpu = hardware.gpus.find((g) => g.index === index);
    if (gpu === undefined) throw new Error(`this machine has no GPU ${index}`);
    return gpu;
  });
  const nvidia = gpus.filter((g) => g.vendor === "nvidia");
  const amd = gpus.filter((g) => g.vendor === "amd");
  if (nvidia.length > 0) {
    env.CUDA_VISIBLE_DEVICES = nvidia.map((g) => g.uuid ?? String(g.index)).join(",");
    // Indexes (where no UUID is known) then mean what nvidia-smi means by them.
    env.CUDA_DEVICE_ORDER = "PCI_BUS_ID";
  }
  if (amd.length > 0) {
    const list = amd.map((g) => String(g.index)).join(",");
    env.HIP_VISIBLE_DEVICES = list;
    env.ROCR_VISIBLE_DEVICES = list;
  }
  return env;
}

/** Device nodes a GPU job needs inside a sandbox, by vendor; a CPU job gets none of them. */
export function gpuDeviceGlobs(hardware: Hardware, assigned: readonly number[]): string[] {
  const vendors = new Set(assigned.map((i) => hardware.gpus.find((g) => g.index === i)?.vendor));
  const globs: string[] = [];
  if (vendors.has("nvidia")) globs.push("nvidia");
  if (vendors.has("amd")) globs.push("kfd", "dri");
  if (vendors.has("intel")) globs.push("dri");
  return globs;
}
