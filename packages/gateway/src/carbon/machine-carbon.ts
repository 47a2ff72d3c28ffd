import type { Logger } from "@beta9/http";
import type { MachineView } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type { MachineCarbon } from "../placement/carbon-rank.ts";
import { type GridIntensity, type Intensity, tableFigure } from "./intensity.ts";

/** How far back a machine's answers count for its measured Wh per 1,000 tokens. */
const MEASURED_WINDOW_MS = 7 * 24 * 3600_000;
/** Fewer tokens than this say too little of a machine's efficiency. */
const MIN_MEASURED_TOKENS = 100;
const REFRESH_MS = 60_000;

/**
 * What placement reads of each machine's carbon (carbon-rank.ts), kept at hand so that placing never
 * waits on the store or a live intensity source: each machine's Wh per 1,000 tokens over the last
 * week of its answers, and its grid's intensity, refreshed in the background. Until a zone's figure
 * has been fetched, the shipped table's answers.
 */
export class MachineCarbonFacts {
  readonly #store: Store;
  readonly #intensity: GridIntensity;
  readonly #log: Pick<Logger, "warn">;
  #whPer1k = new Map<string, number>();
  readonly #grid = new Map<string, Intensity>();
  /** Zones asked of the intensity source already (one without a figure is not asked again until the next refresh). */
  readonly #asked = new Set<string>();
  #refreshedAt = 0;
  #refreshing: Promise<void> | undefined;

  constructor(store: Store, intensity: GridIntensity, log: Pick<Logger, "warn">) {
    this.#store = store;
    this.#intensity = intensity;
    this.#log = log;
  }

  /** Read the machines' measured efficiency and their zones' intensities again. */
  refresh(zones: Iterable<string>): Promise<void> {
    this.#refreshing ??= this.#load([...zones]).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #load(zones: string[]): Promise<void> {
    try {
      const now = Date.now();
      const rows = await this.#store.usage.footprints({
        workspaceId: undefined,
        groupBy: "machine",
        since: now - MEASURED_WINDOW_MS,
        until: now + 1,
      });
      const next = new Map<string, number>();
      for (const r of rows) {
        if (r.group && r.measured_tokens >= MIN_MEASURED_TOKENS) {
          next.set(r.group, (r.energy_wh * 1000) / r.measured_tokens);
        }
      }
      this.#whPer1k = next;
      for (const zone of new Set(zones)) {
        this.#asked.add(zone);
        const figure = await this.#intensity.of(zone);
        if (figure) this.#grid.set(zone, figure);
      }
      this.#refreshedAt = now;
    } catch (err) {
      this.#log.warn({ err }, "could not read machines' measured energy for low-carbon placement");
    }
  }

  /** The facts of a machine now; null when its country (so its grid) is unknown. */
  readonly carbonOf = (m: MachineView): MachineCarbon | null => {
    if (!m.country) return null;
    if (!this.#asked.has(m.country) || Date.now() - this.#refreshedAt > REFRESH_MS) {
      void this.refresh([m.country, ...this.#asked]);
    }
    const grid = this.#grid.get(m.country) ?? tableFigure(m.country, "medium");
    if (!grid) return null;
    return {
      gridGPerKwh: grid.gPerKwh,
      gridSource: grid.source,
      pue: m.pue ?? 1,
      whPer1kTokens: this.#whPer1k.get(m.id) ?? null,
    };
  };
}
