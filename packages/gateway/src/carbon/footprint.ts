import {
  AGENT_ENERGY_TRAILER,
  type EnergyConfidence,
  type EnergyMethod,
  EnergyReading,
} from "@beta9/protocol";
import { Compile } from "typebox/compile";
import type { GridIntensity, Intensity } from "./intensity.ts";

/** The answer headers (and HTTP trailers) that carry a footprint to the client. */
export const ENERGY_WH_HEADER = "x-beta9-energy-wh";
export const CO2E_G_HEADER = "x-beta9-co2e-g";
export const ENERGY_METHOD_HEADER = "x-beta9-energy-method";
export const ENERGY_CONFIDENCE_HEADER = "x-beta9-energy-confidence";
/** The grid figure used: `56 gCO2e/kWh; zone=FR; source=ember:2023; confidence=medium`. */
export const INTENSITY_HEADER = "x-beta9-carbon-intensity";
export const FOOTPRINT_HEADERS = [
  ENERGY_WH_HEADER,
  CO2E_G_HEADER,
  ENERGY_METHOD_HEADER,
  ENERGY_CONFIDENCE_HEADER,
  INTENSITY_HEADER,
] as const;

const checkEnergy = Compile(EnergyReading);

/**
 * protocol's EnergyReading with its unions spelled out: its schema's Static type has `never` for them
 * (a union built with map() is not a tuple), so the checked value is typed here.
 */
export interface Energy {
  wh: number;
  method: EnergyMethod;
  confidence: EnergyConfidence;
  sources: string[];
}

/** A PUE the operator may set; beyond it a figure is a mistake, not a data centre. */
const MAX_PUE = 5;

/**
 * One answer's or job's footprint, as stored on its usage row: SCI's E × I, location-based.
 * `co2e_g` is null when the machine's grid is unknown (no country): never a zero that means "unknown".
 */
export interface Footprint {
  energy_wh: number;
  energy_method: string;
  energy_confidence: EnergyConfidence;
  pue: number;
  grid_zone: string | null;
  grid_intensity: number | null;
  intensity_source: string | null;
  intensity_year: number | null;
  intensity_confidence: EnergyConfidence | null;
  co2e_g: number | null;
  carbon_basis: "location";
}

/** What the gateway knows of the machine that did the work. */
export interface MachinePower {
  country: string | null;
  /** The operator's PUE for it (machines.pue); 1.0 when unset. */
  pue?: number | null | undefined;
}

/** gCO2e = Wh × PUE × intensity / 1000. */
export function footprintOf(energy: Energy, machine: MachinePower, grid: Intensity | undefined): Footprint {
  const pue = validPue(machine.pue);
  return {
    energy_wh: energy.wh,
    energy_method: energy.method,
    energy_confidence: energy.confidence,
    pue,
    grid_zone: grid?.zone ?? machine.country,
    grid_intensity: grid?.gPerKwh ?? null,
    intensity_source: grid?.source ?? null,
    intensity_year: grid?.year ?? null,
    intensity_confidence: grid?.confidence ?? null,
    co2e_g: grid ? (energy.wh * pue * grid.gPerKwh) / 1000 : null,
    carbon_basis: "location",
  };
}

/** Where a footprint comes from: the grid's intensity and the machine that did the work. */
export interface CarbonSource {
  intensity: GridIntensity;
  /** The machine's country and PUE; undefined for a machine the gateway does not know. */
  machine(id: string): MachinePower | undefined;
}

/** A job run's footprint from the energy on its last state event; undefined when it carried none. */
export async function jobFootprint(
  carbon: CarbonSource | undefined,
  machineId: string,
  energy: unknown,
): Promise<Footprint | undefined> {
  if (!carbon || energy === undefined) return undefined;
  const reading = readEnergy(JSON.stringify(energy));
  const machine = carbon.machine(machineId);
  if (!reading || !machine) return undefined;
  return footprintOf(reading, machine, await carbon.intensity.of(machine.country));
}

/** The footprint of an agent's answer, from its energy trailer; undefined when it sent none (or garbage). */
export async function answerFootprint(
  trailers: Record<string, string | string[] | undefined> | undefined,
  machine: MachinePower | undefined,
  intensity: GridIntensity,
): Promise<Footprint | undefined> {
  const energy = readEnergy(trailers?.[AGENT_ENERGY_TRAILER]);
  if (!energy || !machine) return undefined;
  return footprintOf(energy, machine, await intensity.of(machine.country));
}

/** An EnergyReading from its JSON text; undefined when it is not one (a lying or broken agent). */
export function readEnergy(raw: unknown): Energy | undefined {
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (typeof text !== "string" || text.length > 8192) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (!checkEnergy.Check(v)) return undefined;
    const e = v as Energy;
    // An answer's energy beyond 10 kWh is not a reading: refused rather than billed as carbon.
    return Number.isFinite(e.wh) && e.wh <= 10_000 ? e : undefined;
  } catch {
    return undefined;
  }
}

/** The footprint as the answer's headers (or trailers). */
export function footprintHeaders(f: Footprint): Record<string, string> {
  const h: Record<string, string> = {
    [ENERGY_WH_HEADER]: round(f.energy_wh),
    [ENERGY_METHOD_HEADER]: f.energy_method,
    [ENERGY_CONFIDENCE_HEADER]: f.energy_confidence,
  };
  // No grid figure (the machine has no country): no gCO2e header rather than a zero.
  if (f.co2e_g !== null) {
    h[CO2E_G_HEADER] = round(f.co2e_g);
    h[INTENSITY_HEADER] =
      `${f.grid_intensity} gCO2e/kWh; zone=${f.grid_zone}; source=${f.intensity_source}; confidence=${f.intensity_confidence}; pue=${f.pue}`;
  }
  return h;
}

/** The footprint as the extra `beta9` field of an answer's last JSON object (OpenAI's usage chunk, Ollama's done). */
export function footprintField(f: Footprint): Record<string, unknown> {
  return {
    energy_wh: f.energy_wh,
    energy_method: f.energy_method,
    energy_confidence: f.energy_confidence,
    pue: f.pue,
    grid_zone: f.grid_zone,
    grid_intensity_g_per_kwh: f.grid_intensity,
    intensity_source: f.intensity_source,
    intensity_confidence: f.intensity_confidence,
    co2e_g: f.co2e_g,
    basis: f.carbon_basis,
  };
}

function validPue(pue: number | null | undefined): number {
  return typeof pue === "number" && Number.isFinite(pue) && pue >= 1 && pue <= MAX_PUE ? pue : 1;
}

/** Six significant digits: a small answer's Wh is a few thousandths. */
function round(x: number): string {
  return String(Number(x.toPrecision(6)));
}
