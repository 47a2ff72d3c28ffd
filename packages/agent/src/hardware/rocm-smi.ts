import type { Gpu, Usage } from "@beta9/protocol";

/** Inventory and usage in one call; rocm-smi prints one object per card. */
export const ROCM_SMI_GPU_ARGS = ["--showproductname", "--showmeminfo", "vram", "--showuse", "--json"];
export const ROCM_SMI_USAGE_ARGS = ["--showmeminfo", "vram", "--showuse", "--json"];

type UsageGpu = Usage["gpus"][number];
type Card = { index: number; fields: Record<string, unknown> };

function parseJsonObject(text: string, tool: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${tool} output is not JSON: ${JSON.stringify(text.trim().slice(0, 200))}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${tool} output is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** rocm-smi keys vary in case between releases ("Card series" / "Card Series"). */
function field(fields: Record<string, unknown>, ...names: string[]): string | undefined {
  for (const name of names) {
    const key = Object.keys(fields).find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    const value = key === undefined ? undefined : fields[key];
    if (typeof value === "string" && value.trim() !== "" && value.trim() !== "N/A") return value.trim();
    if (typeof value === "number") return String(value);
  }
  return undefined;
}

function integerField(fields: Record<string, unknown>, card: number, ...names: string[]): number | undefined {
  const value = field(fields, ...names);
  if (value === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(value)) {
    throw new Error(`rocm-smi field ${names[0]} of card${card} is not a number: ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function cards(text: string): Card[] {
  const root = parseJsonObject(text, "rocm-smi");
  const result: Card[] = [];
  for (const [key, value] of Object.entries(root)) {
    const match = /^card(\d+)$/.exec(key);
    // Other top-level keys ("system") hold driver-wide facts, not GPUs.
    if (match === null) continue;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(`rocm-smi entry ${key} is not an object`);
    }
    result.push({ index: Number(match[1]), fields: value as Record<string, unknown> });
  }
  return result.sort((a, b) => a.index - b.index);
}

function usageOf(card: Card): UsageGpu {
  const usage: UsageGpu = { index: card.index };
  const used = integerField(card.fields, card.index, "VRAM Total Used Memory (B)");
  if (used !== undefined) usage.memory_used_bytes = used;
  const busy = integerField(card.fields, card.index, "GPU use (%)");
  if (busy !== undefined) usage.utilization_percent = Math.min(100, busy);
  return usage;
}

/** Parses `rocm-smi --showproductname --showmeminfo vram --showuse --json` (memory in bytes). */
export function parseRocmSmiGpus(text: string): Gpu[] {
  const root = parseJsonObject(text, "rocm-smi");
  const system = root.system;
  const driver =
    typeof system === "object" && system !== null
      ? field(system as Record<string, unknown>, "Driver version")
      : undefined;
  return cards(text).map((card) => {
    const name = field(card.fields, "Card Series", "Device Name", "Card Model");
    const total = integerField(card.fields, card.index, "VRAM Total Memory (B)");
    if (name === undefined && total === undefined) {
      throw new Error(`rocm-smi card${card.index} has neither a product name nor VRAM size`);
    }
    const gpu: Gpu = {
      index: card.index,
      vendor: "amd",
      name: name ?? `AMD GPU ${card.index}`,
      memory_total_bytes: total ?? 0,
      unified_memory: false,
      backend: "rocm",
    };
    const { memory_used_bytes, utilization_percent } = usageOf(card);
    if (memory_used_bytes !== undefined) gpu.memory_used_bytes = memory_used_bytes;
    if (utilization_percent !== undefined) gpu.utilization_percent = utilization_percent;
    const uuid = field(card.fields, "Unique ID");
    if (uuid !== undefined) gpu.uuid = uuid;
    if (driver !== undefined) gpu.driver_version = driver;
    return gpu;
  });
}

/** Parses `rocm-smi --showmeminfo vram --showuse --json` into usage entries. */
export function parseRocmSmiUsage(text: string): UsageGpu[] {
  return cards(text).map(usageOf);
}
