import type { MachineView } from "@beta9/protocol";

/*
 * Carbon-aware placement (`prefer: "low-carbon"`): among the machines that fit, the one expected to emit
 * the least per unit of work goes first. For a model, the unit is 1,000 tokens: the machine's measured
 * Wh per 1,000 tokens × its PUE × its grid's intensity. For a job, whose energy is not known ahead, the
 * unit is the kWh the machine draws: PUE × grid intensity.
 */

/** What the gateway knows of a machine's carbon, for ranking and for the sentence that says why. */
export interface MachineCarbon {
  /** gCO2e per kWh of the machine's grid zone (its country), and where that figure comes from. */
  gridGPerKwh: number;
  gridSource: string;
  pue: number;
  /** Measured on this machine from its answers' energy; null until it has served enough. */
  whPer1kTokens: number | null;
}

/** The carbon facts of a machine, or null when its country (and so its grid) is unknown. */
export type CarbonOf = (m: MachineView) => MachineCarbon | null;

export type CarbonUnit = "tokens" | "energy";

interface Ranked {
  machine: MachineView;
  carbon: MachineCarbon | null;
  /** gCO2e per unit; null when it cannot be told. */
  grams: number | null;
  /** Whether `grams` rests on this machine's own measured energy (tokens) or a stand-in. */
  measured: boolean;
}

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const fmt = (g: number) => (g >= 10 ? g.toFixed(0) : g >= 0.1 ? g.toFixed(2) : g.toPrecision(2));

/**
 * Orders `machines` (already in their default order) by expected gCO2e, lowest first, keeping the
 * default order among equals and putting machines of unknown grid last; says why in one sentence.
 * A machine with no measured energy per token yet is costed at the median of the measured ones (or
 * by its grid alone when none is measured), and the sentence says so.
 */
export function rankLowCarbon(
  machines: readonly MachineView[],
  carbonOf: CarbonOf,
  unit: CarbonUnit,
): { machines: MachineView[]; why: string } {
  const facts = machines.map((machine) => ({ machine, carbon: carbonOf(machine) }));
  const typical = median(
    facts.flatMap((f) => (f.carbon?.whPer1kTokens != null ? [f.carbon.whPer1kTokens] : [])),
  );
  const ranked: Ranked[] = facts.map(({ machine, carbon }) => {
    if (!carbon) return { machine, carbon, grams: null, measured: false };
    const perKwh = carbon.gridGPerKwh * carbon.pue;
    if (unit === "energy") return { machine, carbon, grams: perKwh, measured: true };
    const wh = carbon.whPer1kTokens ?? typical;
    return {
      machine,
      carbon,
      grams: wh === null ? perKwh : (wh * perKwh) / 1000,
      measured: carbon.whPer1kTokens !== null,
    };
  });
  // Unknown grids last; the sort is stable, so equals keep the default order.
  const grams = (r: Ranked) => r.grams ?? Number.POSITIVE_INFINITY;
  const order = [...ranked].sort((a, b) => (grams(a) === grams(b) ? 0 : grams(a) < grams(b) ? -1 : 1));
  return { machines: order.map((r) => r.machine), why: explain(order, unit, typical) };
}

function describe(r: Ranked, unit: CarbonUnit, typical: number | null): string {
  const c = r.carbon;
  if (!c || r.grams === null) return `${r.machine.name} (country unknown: no grid intensity)`;
  const grid = `${r.machine.country} grid ${fmt(c.gridGPerKwh)} gCO2e/kWh (${c.gridSource})${c.pue !== 1 ? ` × PUE ${c.pue}` : ""}`;
  if (unit === "energy") return `${r.machine.name}: ${fmt(r.grams)} gCO2e per kWh drawn (${grid})`;
  if (c.whPer1kTokens !== null) {
    return `${r.machine.name}: ${fmt(r.grams)} gCO2e per 1,000 tokens expected (${fmt(c.whPer1kTokens)} Wh per 1,000 tokens measured there, ${grid})`;
  }
  if (typical !== null) {
    return `${r.machine.name}: ${fmt(r.grams)} gCO2e per 1,000 tokens expected (not measured there yet: the pool's median ${fmt(typical)} Wh per 1,000 tokens, ${grid})`;
  }
  return `${r.machine.name}: ranked by its grid alone, no energy measured in the pool yet (${grid})`;
}

function explain(order: Ranked[], unit: CarbonUnit, typical: number | null): string {
  const [first, second] = order;
  if (!first) return "no machine to rank";
  const head = `lowest expected carbon: ${describe(first, unit, typical)}`;
  return second ? `${head}; next ${describe(second, unit, typical)}` : `${head}; the only machine that fits`;
}
