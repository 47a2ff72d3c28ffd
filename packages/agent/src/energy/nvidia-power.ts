import { readNvidiaSmiCsv } from "../hardware/nvidia-smi.ts";

/** Power now (W) per GPU; `power.draw` is an average over the last second on recent drivers. */
export const NVIDIA_POWER_FIELDS = ["index", "power.draw"] as const;
/**
 * NVML's total energy counter (mJ since the driver loaded) as a query field. Current nvidia-smi
 * builds answer "not a valid field to query" (the counter is NVML's nvmlDeviceGetTotalEnergyConsumption,
 * not a CLI field); the agent asks once and uses it only where a driver does print it.
 */
export const NVIDIA_ENERGY_FIELDS = ["index", "total_energy_consumption"] as const;

function numbers(text: string, fields: readonly string[], field: string): Map<number, number> {
  const out = new Map<number, number>();
  readNvidiaSmiCsv(text, fields).forEach((row, line) => {
    const value = row.get(field);
    if (value === undefined) return;
    const match = /^(\d+(?:\.\d+)?)(?:\s*[A-Za-z]+)?$/.exec(value);
    if (match === null) throw new Error(`nvidia-smi ${field} on row ${line + 1} is not a number: ${value}`);
    const index = Number(row.get("index") ?? line);
    out.set(Number.isInteger(index) ? index : line, Number(match[1]));
  });
  return out;
}

/** `--query-gpu=index,power.draw` (any format options, or a recording with more columns): watts by GPU. */
export function parseNvidiaPower(text: string, fields: readonly string[] = NVIDIA_POWER_FIELDS) {
  return numbers(text, fields, "power.draw");
}

/** `--query-gpu=index,total_energy_consumption`: joules by GPU (the counter is in mJ). */
export function parseNvidiaEnergy(text: string, fields: readonly string[] = NVIDIA_ENERGY_FIELDS) {
  return new Map([...numbers(text, fields, "total_energy_consumption")].map(([i, mj]) => [i, mj / 1000]));
}
