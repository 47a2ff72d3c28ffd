/** `rocm-smi --showpower --json`: one object per card ("card0"), power as a string in watts. */
export const ROCM_SMI_POWER_ARGS = ["--showpower", "--json"];
/** `amd-smi metric --power --json`. */
export const AMD_SMI_POWER_ARGS = ["metric", "--power", "--json"];

// rocm-smi names the figure after what the card reports: an average (RDNA, CDNA2) or the current socket power (MI300).
const ROCM_POWER_KEYS = [
  "Average Graphics Package Power (W)",
  "Current Socket Graphics Package Power (W)",
  "Average Socket Power (W)",
];

function watts(value: unknown): number | undefined {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number.parseFloat(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Watts by GPU index from rocm-smi's JSON; throws when the text is not JSON of cards. */
export function parseRocmSmiPower(text: string): Map<number, number> {
  const data = JSON.parse(text) as Record<string, Record<string, unknown>>;
  if (data === null || typeof data !== "object") throw new Error("rocm-smi printed no JSON object");
  const out = new Map<number, number>();
  for (const [card, fields] of Object.entries(data)) {
    const index = /^card(\d+)$/.exec(card)?.[1];
    if (index === undefined || fields === null || typeof fields !== "object") continue;
    const value = ROCM_POWER_KEYS.map((k) => watts(fields[k])).find((w) => w !== undefined);
    if (value !== undefined) out.set(Number(index), value);
  }
  return out;
}

interface AmdSmiValue {
  value?: unknown;
  unit?: unknown;
}

/**
 * Watts by GPU from `amd-smi metric --power --json`: a list of {gpu, power: {socket_power: {value, unit}}},
 * wrapped in {"gpu_data": [...]} by newer releases. "N/A" values are skipped.
 */
export function parseAmdSmiPower(text: string): Map<number, number> {
  const parsed = JSON.parse(text) as unknown;
  const list = Array.isArray(parsed) ? parsed : (parsed as { gpu_data?: unknown })?.gpu_data;
  if (!Array.isArray(list)) throw new Error("amd-smi printed no list of GPUs");
  const out = new Map<number, number>();
  for (const entry of list as { gpu?: unknown; power?: Record<string, AmdSmiValue | unknown> }[]) {
    if (typeof entry?.gpu !== "number") continue;
    const socket = entry.power?.socket_power as AmdSmiValue | number | string | undefined;
    const raw = typeof socket === "object" && socket !== null ? socket.value : socket;
    const unit = typeof socket === "object" && socket !== null ? String(socket.unit ?? "W") : "W";
    const w = watts(raw);
    if (w !== undefined) out.set(entry.gpu, unit === "mW" ? w / 1000 : w);
  }
  return out;
}
