import type { Gpu, GpuVendor, Hardware } from "@beta9/protocol";
import type { Accelerator } from "./engine.ts";

/** The compute API a GPU is driven through, from what hardware detection reported. */
export function gpuAccelerator(gpu: Gpu): Accelerator {
  switch (gpu.backend) {
    case "cuda":
    case "metal":
    case "rocm":
    case "vulkan":
      return gpu.backend;
  }
  switch (gpu.vendor) {
    case "nvidia":
      return "cuda";
    case "apple":
      return "metal";
    case "amd":
      return "rocm";
    case "intel":
      return "vulkan";
  }
}

export function gpusOf(hardware: Hardware, vendor: GpuVendor): Gpu[] {
  return hardware.gpus.filter((gpu) => gpu.vendor === vendor);
}

/** The GPUs an engine for safetensors (vLLM, SGLang) runs on: NVIDIA's, else AMD's. */
export function servingGpuCount(hardware: Hardware): number {
  const nvidia = gpusOf(hardware, "nvidia").length;
  return nvidia > 0 ? nvidia : gpusOf(hardware, "amd").length;
}

/** What an engine for safetensors drives those GPUs with: CUDA, else ROCm; null on a machine with neither. */
export function servingGpuAccelerator(hardware: Hardware): "cuda" | "rocm" | null {
  if (gpusOf(hardware, "nvidia").length > 0) return "cuda";
  if (gpusOf(hardware, "amd").length > 0) return "rocm";
  return null;
}

/** The accelerators of this machine, CPU first; no duplicates. */
export function machineAccelerators(hardware: Hardware): Accelerator[] {
  const found: Accelerator[] = ["cpu"];
  for (const gpu of hardware.gpus) {
    const accelerator = gpuAccelerator(gpu);
    if (!found.includes(accelerator)) found.push(accelerator);
  }
  return found;
}

export function isAppleSilicon(hardware: Hardware): boolean {
  return hardware.os === "darwin" && hardware.arch === "arm64";
}

/**
 * Tensor parallelism must divide the model's attention heads, which are a power of two for nearly
 * every model; on 3 or 6 GPUs the largest power of two that fits is the size that works.
 */
export function tensorParallelSize(gpuCount: number): number {
  if (gpuCount <= 1) return 1;
  return 2 ** Math.floor(Math.log2(gpuCount));
}

/** Threads for CPU work: every core detection found, at least one. */
export function threadCount(hardware: Hardware): number {
  return Math.max(1, hardware.cpu_cores);
}

/** A short description for error messages: "linux/x64 with no GPU", "darwin/arm64 with Apple M2". */
export function describeMachine(hardware: Hardware): string {
  const gpus = hardware.gpus.map((gpu) => gpu.name);
  return `${hardware.os}/${hardware.arch} with ${gpus.length === 0 ? "no GPU" : gpus.join(", ")}`;
}
