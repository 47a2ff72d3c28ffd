import { CPU_TDP_WATTS } from "./cpu-tdp-table.ts";

/** CodeCarbon's figure for a CPU it has no rating for: 4 W per thread. */
export const DEFAULT_WATTS_PER_THREAD = 4;

/** What one busy core of this machine draws, by its rated power, and where that figure came from. */
export interface CpuRating {
  wattsPerCore: number;
  /** "tdp-table:AMD EPYC 7B13 (240 W / 64 cores)", or the default's name. */
  source: string;
}

/** "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz" → "Intel Xeon Gold 6248"; "AMD Ryzen 9 7950X 16-Core Processor" → "AMD Ryzen 9 7950X". */
export function normalizeCpuModel(model: string): string {
  return model
    .replace(/\((R|TM|tm|r)\)/g, "")
    .replace(/@.*$/, "")
    .replace(/\b\d+-Core Processor\b/i, "")
    .replace(/\b(CPU|Processor)\b/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The rating of the CPU named `model` (as /proc/cpuinfo or sysctl says it), split over the `cores`
 * this machine has: the longest table name that the model names wins ("EPYC 7543P" before "EPYC 754").
 * A VM gets its cores' share of the whole part, an over-estimate when it has few cores of a big part;
 * the figure is labelled util_tdp, low confidence, for that reason.
 */
export function cpuRating(model: string, cores: number, table = CPU_TDP_WATTS): CpuRating {
  const name = normalizeCpuModel(model);
  let best: string | undefined;
  for (const part of Object.keys(table)) {
    const at = name.indexOf(part);
    if (at < 0) continue;
    const after = name[at + part.length];
    if (after !== undefined && /[A-Za-z0-9]/.test(after)) continue;
    if (best === undefined || part.length > best.length) best = part;
  }
  const threads = Math.max(1, cores);
  if (best === undefined)
    return {
      wattsPerCore: DEFAULT_WATTS_PER_THREAD,
      source: `tdp-default:${DEFAULT_WATTS_PER_THREAD} W per thread (no rating for ${JSON.stringify(name.slice(0, 80))})`,
    };
  const watts = table[best]!;
  return { wattsPerCore: watts / threads, source: `tdp-table:${best} (${watts} W / ${threads} cores)` };
}
