import { EU_COUNTRIES, type GpuRequirement, type MachineView } from "@beta9/protocol";

/**
 * Where work may run, whatever the work is: these hold for as long as it runs, so they are checked
 * again at routing time (a machine's country or GPUs may change under a replica), not only to place it.
 */
export interface Constraints {
  pool: string;
  gpu: GpuRequirement;
  /** Allowed countries (ISO alpha-2); empty: any. */
  countries: readonly string[];
  /** "eu" or null. */
  region: string | null;
}

/** What of a machine the constraints read. */
export type MachinePlace = Pick<MachineView, "pool" | "country" | "hardware">;

export const gpuFits = (gpu: GpuRequirement, m: MachinePlace): boolean =>
  gpu === "any" ||
  (gpu === "none" ? m.hardware.gpus.length === 0 : m.hardware.gpus.some((g) => g.vendor === gpu));

export const locationFits = (c: Constraints, m: MachinePlace): boolean =>
  (c.countries.length === 0 && !c.region) ||
  (m.country !== null &&
    (c.countries.length === 0 || c.countries.includes(m.country)) &&
    (c.region !== "eu" || EU_COUNTRIES.has(m.country)));

/** Whether a machine satisfies the pool, GPU and country or region now. */
export function meetsConstraints(c: Constraints, m: MachinePlace): boolean {
  return m.pool === c.pool && gpuFits(c.gpu, m) && locationFits(c, m);
}

/** "DE,FR and the EU": the place a constraint names, for a reason a person reads. */
export function describeLocation(c: Constraints): string {
  return [c.countries.length > 0 ? c.countries.join(",") : "", c.region === "eu" ? "the EU" : ""]
    .filter(Boolean)
    .join(" and ");
}
