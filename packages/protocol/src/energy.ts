import { type Static, Type } from "typebox";

/**
 * How a figure of energy was obtained, best first:
 * - `counter`: an energy counter that the hardware keeps (NVML total energy, RAPL energy_uj, hwmon energy1_input);
 * - `power_sampled`: power readings sampled over time and integrated (nvidia-smi power.draw, amd-smi, macmon);
 * - `util_tdp`: CPU time (or GPU utilisation) × the part's rated power (TDP) from a shipped table;
 * - `static`: a fixed figure for the machine (nothing better was readable).
 */
export const ENERGY_METHODS = ["counter", "power_sampled", "util_tdp", "static"] as const;
// Literals spelled out: Static<> of a union built with map() is never.
export const EnergyMethod = Type.Union([
  Type.Literal("counter"),
  Type.Literal("power_sampled"),
  Type.Literal("util_tdp"),
  Type.Literal("static"),
]);
export type EnergyMethod = (typeof ENERGY_METHODS)[number];

/** How sure a figure is: high (a counter of the part itself), medium (sampled power), low (estimates). */
export const ENERGY_CONFIDENCES = ["high", "medium", "low"] as const;
export const EnergyConfidence = Type.Union([
  Type.Literal("high"),
  Type.Literal("medium"),
  Type.Literal("low"),
]);
export type EnergyConfidence = (typeof ENERGY_CONFIDENCES)[number];

/**
 * The energy one answer or one job used on its machine, as the agent measured it (before PUE and
 * grid intensity, which the gateway applies). `sources` names each reading used, e.g.
 * "rapl:package-0", "nvidia-smi:power.draw", "tdp-table:AMD EPYC 7B13 (240 W / 64 cores)".
 */
export const EnergyReading = Type.Object({
  wh: Type.Number({ minimum: 0 }),
  method: EnergyMethod,
  confidence: EnergyConfidence,
  sources: Type.Array(Type.String({ maxLength: 200 }), { maxItems: 16 }),
});
export type EnergyReading = Static<typeof EnergyReading>;

/**
 * Agent → gateway: the energy of one inference answer, as JSON (EnergyReading) in an HTTP/2 trailer of
 * the agent's response (streamed or not: it is known only when the answer has ended). Absent when the
 * agent could not measure; the gateway then records no energy rather than a zero.
 */
export const AGENT_ENERGY_TRAILER = "x-beta9-agent-energy";
