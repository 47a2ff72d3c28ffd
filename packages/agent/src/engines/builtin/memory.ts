import type { GgufInsights, Llama } from "node-llama-cpp";

/**
 * What a model will cost before it is loaded, from node-llama-cpp's own estimates (the same ones it
 * uses to pick GPU layers and guard context creation): weights plus the KV cache of every sequence.
 * RAM and VRAM are added up; the budget covers both.
 */
export interface LoadEstimate {
  gpuLayers: number;
  modelBytes: number;
  contextBytes: number;
  totalBytes: number;
}

export interface LoadShape {
  contextSize: number;
  parallel: number;
  gpuLayers?: number | "auto" | "max" | undefined;
}

export async function estimateLoad(
  llama: Llama,
  insights: GgufInsights,
  shape: LoadShape,
): Promise<LoadEstimate> {
  const gpuLayers = await insights.configurationResolver.resolveModelGpuLayers(shape.gpuLayers ?? "auto", {
    getVramState: () => llama.getVramState(),
    llamaVramPaddingSize: llama.vramPaddingSize,
    llamaGpu: llama.gpu,
    llamaSupportsGpuOffloading: llama.supportsGpuOffloading,
  });
  const model = await insights.estimateModelResourceRequirementsV2({
    gpuLayers,
    useMmap: llama.supportsMmap,
    gpuSupportsMmap: llama.gpuSupportsMmap,
  });
  const context = await insights.estimateContextResourceRequirementsV2({
    contextSize: shape.contextSize,
    modelGpuLayers: gpuLayers,
    sequences: shape.parallel,
  });
  const modelBytes = model.cpuRam + model.gpuVram;
  const contextBytes = context.cpuRam + context.gpuVram;
  return { gpuLayers, modelBytes, contextBytes, totalBytes: modelBytes + contextBytes };
}

/** Memory for an embedding context (one sequence). */
export async function estimateEmbeddingContext(
  insights: GgufInsights,
  contextSize: number,
  batchSize: number,
  gpuLayers: number,
): Promise<number> {
  const r = await insights.estimateContextResourceRequirementsV2({
    contextSize,
    modelGpuLayers: gpuLayers,
    sequences: 1,
    batchSize,
    isEmbeddingContext: true,
  });
  return r.cpuRam + r.gpuVram;
}

/**
 * Without --memory-budget: the machine's RAM, plus dedicated VRAM when a GPU is used, less the padding
 * node-llama-cpp keeps for the system. (Unified memory, as on Apple silicon, is counted once.)
 */
export async function defaultBudget(llama: Llama): Promise<number> {
  const ram = await llama.getRamState();
  let budget = Math.max(0, ram.total - llama.ramPaddingSize);
  if (llama.gpu !== false) {
    const vram = await llama.getVramState();
    budget += Math.max(0, vram.total - vram.unifiedSize - llama.vramPaddingSize);
  }
  return budget;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** "1.25 GiB"; below a tenth of a GiB, "37.5 MiB", so small numbers still say something. */
export function formatBytes(bytes: number): string {
  if (bytes >= GiB / 10) return `${(bytes / GiB).toFixed(2)} GiB`;
  return `${(bytes / MiB).toFixed(1)} MiB`;
}
