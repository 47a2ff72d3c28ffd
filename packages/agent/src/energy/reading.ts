import {
  ENERGY_CONFIDENCES,
  ENERGY_METHODS,
  type EnergyConfidence,
  type EnergyMethod,
  type EnergyReading,
} from "@beta9/protocol";

/** One kind of energy in a figure: which part, how it was measured, and how much. */
export interface EnergyPart {
  /** What was read, e.g. "rapl:package-0" or "nvidia-smi:power.draw gpu 0". */
  source: string;
  method: EnergyMethod;
  confidence: EnergyConfidence;
  joules: number;
}

const JOULES_PER_WH = 3600;
const methodRank = (m: EnergyMethod) => (ENERGY_METHODS as readonly string[]).indexOf(m);
const confidenceRank = (c: EnergyConfidence) => (ENERGY_CONFIDENCES as readonly string[]).indexOf(c);

/**
 * Several parts as one reading: the method of the part that holds the most energy (what the figure
 * mostly is), the lowest confidence of any part (a figure is as sure as its least sure share), and
 * every source. Undefined for no parts at all: nothing was measured, which is not a zero.
 */
export function combineParts(parts: readonly EnergyPart[]): EnergyReading | undefined {
  if (parts.length === 0) return undefined;
  const bySource = new Map<string, EnergyPart>();
  for (const p of parts) {
    const seen = bySource.get(p.source);
    bySource.set(p.source, seen ? { ...seen, joules: seen.joules + p.joules } : { ...p });
  }
  const merged = [...bySource.values()];
  const main = merged.reduce((a, b) =>
    b.joules > a.joules || (b.joules === a.joules && methodRank(b.method) < methodRank(a.method)) ? b : a,
  );
  const confidence = merged.reduce<EnergyConfidence>(
    (low, p) => (confidenceRank(p.confidence) > confidenceRank(low) ? p.confidence : low),
    "high",
  );
  const joules = merged.reduce((sum, p) => sum + Math.max(0, p.joules), 0);
  return {
    wh: joules / JOULES_PER_WH,
    method: main.method,
    confidence,
    sources: merged.map((p) => p.source.slice(0, 200)).slice(0, 16),
  };
}
