import type { Gpu, Usage } from "@beta9/protocol";

const MIB = 1024 * 1024;

/** Fields of the inventory query, in the order nvidia-smi prints them. */
export const NVIDIA_GPU_FIELDS = [
  "index",
  "name",
  "uuid",
  "memory.total",
  "memory.used",
  "utilization.gpu",
  "driver_version",
] as const;

/** The cheap per-heartbeat query: one nvidia-smi call covers every GPU. */
export const NVIDIA_USAGE_FIELDS = ["index", "memory.used", "utilization.gpu"] as const;

export function nvidiaSmiQueryArgs(fields: readonly string[]): string[] {
  return [`--query-gpu=${fields.join(",")}`, "--format=csv,noheader,nounits"];
}

type UsageGpu = Usage["gpus"][number];
type Row = ReadonlyMap<string, string | undefined>;

// Accepted names for the same property (nvidia-smi --help-query-gpu lists both spellings).
const FIELD_ALIASES: Record<string, string> = {
  gpu_name: "name",
  gpu_uuid: "uuid",
  gpu_bus_id: "pci.bus_id",
};

function canonicalField(raw: string): string {
  // A header cell carries its unit when `nounits` is absent: "memory.total [MiB]".
  const name = raw.replace(/\s*\[[^\]]*\]\s*$/, "").trim();
  return FIELD_ALIASES[name] ?? name;
}

/** "[N/A]", "[Not Supported]", "[Requested functionality has been deprecated]", "N/A" and "" all mean unknown. */
function cellValue(raw: string): string | undefined {
  const value = raw.trim();
  if (value === "" || value === "N/A" || /^\[.*\]$/.test(value)) return undefined;
  return value;
}

function looksLikeHeader(cells: readonly string[]): boolean {
  const names = cells.map(canonicalField);
  return names.includes("name") || names.includes("memory.total") || names.includes("index");
}

/**
 * Splits `--format=csv` output into rows keyed by field name. With `noheader` the caller's field
 * list names the columns; when the output starts with a header line (no `noheader`), the header
 * wins, so a recording taken with a different field list still parses.
 */
export function readNvidiaSmiCsv(text: string, fields: readonly string[]): Row[] {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  if (lines.length === 0) return [];
  let columns = fields.map(canonicalField);
  const first = lines[0]!.split(",");
  if (looksLikeHeader(first) && !/^\d/.test(first[0]!.trim())) {
    columns = first.map(canonicalField);
    lines.shift();
  }
  return lines.map((line, lineIndex) => {
    const cells = line.split(",");
    if (cells.length !== columns.length) {
      throw new Error(
        `nvidia-smi output line ${lineIndex + 1} has ${cells.length} fields, expected ${columns.length}: ${JSON.stringify(line.slice(0, 200))}`,
      );
    }
    return new Map(columns.map((column, i) => [column, cellValue(cells[i]!)]));
  });
}

/** Reads a number that may still carry nvidia-smi's unit ("81559 MiB", "100 %"). */
function numberField(row: Row, field: string, lineIndex: number): number | undefined {
  const value = row.get(field);
  if (value === undefined) return undefined;
  const match = /^(-?\d+(?:\.\d+)?)(?:\s*[A-Za-z%]+)?$/.exec(value);
  if (match === null) {
    throw new Error(
      `nvidia-smi field ${field} on GPU row ${lineIndex + 1} is not a number: ${JSON.stringify(value)}`,
    );
  }
  return Number(match[1]);
}

function indexOf(row: Row, lineIndex: number): number {
  const index = numberField(row, "index", lineIndex);
  if (index === undefined) return lineIndex;
  if (!Number.isInteger(index) || index < 0) {
    throw new Error(`nvidia-smi index on GPU row ${lineIndex + 1} is not a GPU index: ${index}`);
  }
  return index;
}

function percent(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.min(100, Math.max(0, value));
}

function mibToBytes(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value * MIB);
}

/**
 * Parses `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` into GPUs.
 * memory.total is reported in MiB; a GPU that reports it as [N/A] (unified-memory parts such as
 * GB10) gets 0, meaning unknown, rather than being dropped.
 */
export function parseNvidiaSmiGpus(text: string, fields: readonly string[] = NVIDIA_GPU_FIELDS): Gpu[] {
  return readNvidiaSmiCsv(text, fields).map((row, lineIndex) => {
    const name = row.get("name");
    if (name === undefined) {
      throw new Error(`nvidia-smi GPU row ${lineIndex + 1} has no name (query must include the name field)`);
    }
    const gpu: Gpu = {
      index: indexOf(row, lineIndex),
      vendor: "nvidia",
      name,
      memory_total_bytes: mibToBytes(numberField(row, "memory.total", lineIndex)) ?? 0,
      unified_memory: false,
      backend: "cuda",
    };
    const used = mibToBytes(numberField(row, "memory.used", lineIndex));
    if (used !== undefined) gpu.memory_used_bytes = used;
    const utilization = percent(numberField(row, "utilization.gpu", lineIndex));
    if (utilization !== undefined) gpu.utilization_percent = utilization;
    const driver = row.get("driver_version");
    if (driver !== undefined) gpu.driver_version = driver;
    const uuid = row.get("uuid");
    if (uuid !== undefined) gpu.uuid = uuid;
    return gpu;
  });
}

/** Parses the per-heartbeat query (index, memory.used, utilization.gpu) into usage entries. */
export function parseNvidiaSmiUsage(
  text: string,
  fields: readonly string[] = NVIDIA_USAGE_FIELDS,
): UsageGpu[] {
  return readNvidiaSmiCsv(text, fields).map((row, lineIndex) => {
    const usage: UsageGpu = { index: indexOf(row, lineIndex) };
    const used = mibToBytes(numberField(row, "memory.used", lineIndex));
    if (used !== undefined) usage.memory_used_bytes = used;
    const utilization = percent(numberField(row, "utilization.gpu", lineIndex));
    if (utilization !== undefined) usage.utilization_percent = utilization;
    return usage;
  });
}
