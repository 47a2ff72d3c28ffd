import type { MachineView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import type { CarbonOf, MachineCarbon } from "./carbon-rank.ts";
import { rankLowCarbon } from "./carbon-rank.ts";
import { type Needs, place } from "./place.ts";
import { machineView } from "./testing/machine-view.ts";

// Grid figures as the shipped table has them (Ember, 2023): FR 56, DE 381, PL 662 gCO2e/kWh.
const GRID: Record<string, number> = { FR: 56, DE: 381, PL: 662 };
const facts =
  (measured: Record<string, number | null>, pue: Record<string, number> = {}): CarbonOf =>
  (m: MachineView): MachineCarbon | null =>
    m.country && GRID[m.country] !== undefined
      ? {
          gridGPerKwh: GRID[m.country]!,
          gridSource: "Ember 2023",
          pue: pue[m.id] ?? 1,
          whPer1kTokens: measured[m.id] ?? null,
        }
      : null;
const fr = machineView({ id: "m-fr", country: "FR" });
const pl = machineView({ id: "m-pl", country: "PL" });
const de = machineView({ id: "m-de", country: "DE" });
const nowhere = machineView({ id: "m-x" });
const ids = (ms: MachineView[]) => ms.map((m) => m.id);

describe("low-carbon ranking", () => {
  it("puts the machine with the lowest expected gCO2e per 1,000 tokens first and says why in numbers", () => {
    const r = rankLowCarbon([pl, de, fr], facts({ "m-fr": 0.5, "m-pl": 0.5, "m-de": 0.5 }), "tokens");
    expect(ids(r.machines)).toEqual(["m-fr", "m-de", "m-pl"]);
    // 0.5 Wh × 56 g/kWh / 1000 = 0.028 g; DE: 0.19 g.
    expect(r.why).toContain("m-fr: 0.028 gCO2e per 1,000 tokens expected");
    expect(r.why).toContain("0.50 Wh per 1,000 tokens measured there");
    expect(r.why).toContain("FR grid 56 gCO2e/kWh (Ember 2023)");
    expect(r.why).toContain("next m-de: 0.19 gCO2e");
  });

  it("lets measured efficiency beat a cleaner grid when the difference is larger", () => {
    // FR needs 20 Wh per 1,000 tokens (1.12 g); PL needs 0.5 (0.33 g).
    const r = rankLowCarbon([fr, pl], facts({ "m-fr": 20, "m-pl": 0.5 }), "tokens");
    expect(ids(r.machines)).toEqual(["m-pl", "m-fr"]);
  });

  it("applies each machine's PUE", () => {
    const r = rankLowCarbon([fr, de], facts({}, { "m-fr": 8 }), "energy");
    // FR 56 × 8 = 448 > DE 381.
    expect(ids(r.machines)).toEqual(["m-de", "m-fr"]);
    expect(r.why).toContain("× PUE 8");
  });

  it("costs an unmeasured machine at the pool's median and says so", () => {
    const r = rankLowCarbon([pl, fr], facts({ "m-pl": 1 }), "tokens");
    expect(ids(r.machines)).toEqual(["m-fr", "m-pl"]);
    expect(r.why).toContain("not measured there yet: the pool's median 1.00 Wh per 1,000 tokens");
  });

  it("ranks by grid alone when nothing is measured, and puts machines of unknown country last", () => {
    const r = rankLowCarbon([nowhere, pl, fr], facts({}), "tokens");
    expect(ids(r.machines)).toEqual(["m-fr", "m-pl", "m-x"]);
    expect(r.why).toContain("ranked by its grid alone");
  });

  it("keeps the default order among equals", () => {
    const fr2 = machineView({ id: "m-fr2", country: "FR" });
    expect(ids(rankLowCarbon([fr2, fr], facts({}), "energy").machines)).toEqual(["m-fr2", "m-fr"]);
  });
});

describe("place() with a low-carbon preference", () => {
  const needs = (over: Partial<Needs> = {}): Needs => ({
    constraints: { pool: "external", gpu: "any", countries: [], region: null },
    resources: { vramBytes: null, memoryBytes: null },
    askedBy: "this deployment",
    ...over,
  });

  it("ranks what fits by carbon instead of load, and without it by load with its own reason", () => {
    const busyFr = machineView({
      id: "m-fr",
      country: "FR",
      inference: {
        engines: [],
        models: [{ name: "a", engine: "builtin", state: "ready", context_size: null, memory_bytes: null }],
        memory_free_bytes: 1e9,
        vram_free_bytes: null,
      },
    });
    const byLoad = place(needs(), [busyFr, pl]);
    expect(byLoad.ok && ids(byLoad.machines)).toEqual(["m-pl", "m-fr"]);
    expect(byLoad.ok && byLoad.why).toMatch(/^least loaded of 2 that fit: m-pl serves 0 models/);
    const green = place(needs({ lowCarbon: { carbonOf: facts({}), unit: "tokens" } }), [busyFr, pl]);
    expect(green.ok && ids(green.machines)).toEqual(["m-fr", "m-pl"]);
    expect(green.ok && green.why).toMatch(/^lowest expected carbon: m-fr/);
  });

  it("never lets the preference widen the constraints", () => {
    const p = place(
      needs({
        constraints: { pool: "external", gpu: "any", countries: ["PL"], region: null },
        lowCarbon: { carbonOf: facts({}), unit: "tokens" },
      }),
      [fr, pl],
    );
    expect(p.ok && ids(p.machines)).toEqual(["m-pl"]);
  });
});
