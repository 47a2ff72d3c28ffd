import type { Gpu, GpuVendor } from "@beta9/protocol";

export const SYSTEM_PROFILER_DISPLAYS_ARGS = ["SPDisplaysDataType", "-json"];

/** One graphics processor as macOS System Information lists it. */
export interface DisplayAdapter {
  /** Chip or card name, e.g. "Apple M2 Ultra". */
  name: string;
  vendor: GpuVendor | undefined;
  /** Apple Silicon reports its GPU core count ("sppci_cores"). */
  gpuCores?: number;
  /** Dedicated VRAM of a discrete card on an Intel Mac. */
  vramBytes?: number;
  /** Memory an integrated GPU borrows from RAM ("spdisplays_vram_shared"). */
  sharedVramBytes?: number;
}

const SIZE_UNITS: Record<string, number> = { KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/** "4 GB" / "1536 MB" as System Information prints them (binary units). */
function size(value: unknown): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB)$/i.exec(text(value) ?? "");
  return match === null ? undefined : Math.round(Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!);
}

function vendorOf(vendor: string | undefined, name: string): GpuVendor | undefined {
  const haystack = `${vendor ?? ""} ${name}`.toLowerCase();
  if (haystack.includes("apple")) return "apple";
  if (haystack.includes("nvidia")) return "nvidia";
  if (/\b(amd|ati)\b/.test(haystack) || haystack.includes("radeon") || haystack.includes("vendor_amd"))
    return "amd";
  if (haystack.includes("intel")) return "intel";
  return undefined;
}

/** Parses `system_profiler SPDisplaysDataType -json`; the monitors nested in each entry are ignored. */
export function parseSystemProfilerDisplays(output: string): DisplayAdapter[] {
  let root: unknown;
  try {
    root = JSON.parse(output);
  } catch {
    throw new Error(`system_profiler output is not JSON: ${JSON.stringify(output.trim().slice(0, 200))}`);
  }
  const list =
    typeof root === "object" && root !== null
      ? (root as Record<string, unknown>).SPDisplaysDataType
      : undefined;
  if (!Array.isArray(list)) throw new Error("system_profiler output has no SPDisplaysDataType list");
  const adapters: DisplayAdapter[] = [];
  for (const entry of list) {
    if (typeof entry !== "object" || entry === null) continue;
    const fields = entry as Record<string, unknown>;
    // "_name" is sometimes an internal token ("kHW_AppleM1Item"); "sppci_model" is the marketing name.
    const name = text(fields.sppci_model) ?? text(fields._name);
    if (name === undefined) continue;
    const adapter: DisplayAdapter = { name, vendor: vendorOf(text(fields.spdisplays_vendor), name) };
    const cores = Number(text(fields.sppci_cores));
    if (Number.isInteger(cores) && cores > 0) adapter.gpuCores = cores;
    const vram = size(fields.spdisplays_vram) ?? size(fields._spdisplays_vram);
    if (vram !== undefined) adapter.vramBytes = vram;
    const shared = size(fields.spdisplays_vram_shared);
    if (shared !== undefined) adapter.sharedVramBytes = shared;
    adapters.push(adapter);
  }
  return adapters;
}

/**
 * Turns display adapters into GPUs. Apple Silicon has no VRAM of its own: its GPU can use the
 * machine's unified memory (hw.memsize), so that is what it reports.
 */
export function macGpus(adapters: readonly DisplayAdapter[], unifiedMemoryBytes: number): Gpu[] {
  const gpus: Gpu[] = [];
  for (const adapter of adapters) {
    if (adapter.vendor === undefined) continue;
    const unified = adapter.vendor === "apple" || adapter.vramBytes === undefined;
    const memory =
      adapter.vendor === "apple" ? unifiedMemoryBytes : (adapter.vramBytes ?? adapter.sharedVramBytes ?? 0);
    gpus.push({
      index: gpus.length,
      vendor: adapter.vendor,
      name: adapter.name,
      memory_total_bytes: memory,
      unified_memory: unified,
      backend: "metal",
    });
  }
  return gpus;
}
