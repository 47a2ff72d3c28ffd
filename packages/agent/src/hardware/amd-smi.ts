import type { Gpu, Usage } from "@beta9/protocol";

/** amd-smi replaces rocm-smi from ROCm 6; tried when rocm-smi is absent. */
export const AMD_SMI_STATIC_ARGS = ["static", "--asic", "--vram", "--json"];
export const AMD_SMI_METRIC_ARGS = ["metric", "--usage", "--mem-usage", "--json"];

type UsageGpu = Usage["gpus"][number];
type Entry = Record<string, unknown>;

const UNIT_BYTES: Record<string, number> = {
  B: 1,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

function isObject(value: unknown): value is Entry {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** amd-smi prints a bare array, or `{"gpu_data": [...]}` in releases that also report CPUs. */
function gpuEntries(text: string, tool: string): Entry[] {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    throw new Error(`${tool} output is not JSON: ${JSON.stringify(text.trim().slice(0, 200))}`);
  }
  const list = Array.isArray(root) ? root : isObject(root) ? root.gpu_data : undefined;
  if (!Array.isArray(list)) throw new Error(`${tool} output has no GPU list`);
  return list.map((entry, position) => {
    if (!isObject(entry)) throw new Error(`${tool} GPU entry ${position} is not an object`);
    return entry;
  });
}

function gpuIndex(entry: Entry, position: number): number {
  return typeof entry.gpu === "number" && Number.isInteger(entry.gpu) && entry.gpu >= 0
    ? entry.gpu
    : position;
}

/** A measurement is `{"value": 196592, "unit": "MB"}`, a bare number, or text like "196592 MB"; "N/A" is unknown. */
function measurement(value: unknown, defaultUnit: string): { value: number; unit: string } | undefined {
  if (isObject(value))
    return measurement(value.value, typeof value.unit === "string" ? value.unit : defaultUnit);
  if (typeof value === "number" && Number.isFinite(value)) return { value, unit: defaultUnit };
  if (typeof value === "string") {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z%]*)\s*$/.exec(value);
    if (match !== null) return { value: Number(match[1]), unit: match[2] || defaultUnit };
  }
  return undefined;
}

function bytes(value: unknown): number | undefined {
  const m = measurement(value, "MB");
  if (m === undefined) return undefined;
  const scale = UNIT_BYTES[m.unit.toUpperCase()];
  if (scale === undefined) throw new Error(`amd-smi memory unit ${JSON.stringify(m.unit)} is not known`);
  return Math.round(m.value * scale);
}

function child(entry: Entry, key: string): Entry {
  const value = entry[key];
  return isObject(value) ? value : {};
}

/** Parses `amd-smi static --asic --vram --json`. */
export function parseAmdSmiStatic(text: string): Gpu[] {
  return gpuEntries(text, "amd-smi static").map((entry, position) => {
    const index = gpuIndex(entry, position);
    const asic = child(entry, "asic");
    const name =
      typeof asic.market_name === "string" && asic.market_name.trim() !== ""
        ? asic.market_name.trim()
        : undefined;
    const total = bytes(child(entry, "vram").size);
    if (name === undefined && total === undefined) {
      throw new Error(`amd-smi static GPU ${index} has neither asic.market_name nor vram.size`);
    }
    const gpu: Gpu = {
      index,
      vendor: "amd",
      name: name ?? `AMD GPU ${index}`,
      memory_total_bytes: total ?? 0,
      unified_memory: false,
      backend: "rocm",
    };
    const driver = child(entry, "driver").version;
    if (typeof driver === "string" && driver !== "N/A") gpu.driver_version = driver;
    return gpu;
  });
}

/** Parses `amd-smi metric --usage --mem-usage --json`. */
export function parseAmdSmiMetric(text: string): UsageGpu[] {
  return gpuEntries(text, "amd-smi metric").map((entry, position) => {
    const usage: UsageGpu = { index: gpuIndex(entry, position) };
    const used = bytes(child(entry, "mem_usage").used_vram);
    if (used !== undefined) usage.memory_used_bytes = used;
    const activity = measurement(child(entry, "usage").gfx_activity, "%");
    if (activity !== undefined) usage.utilization_percent = Math.min(100, Math.max(0, activity.value));
    return usage;
  });
}
