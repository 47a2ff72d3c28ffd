import type { Logger } from "@beta9/http";
import type { EnergyConfidence } from "@beta9/protocol";
import { request } from "undici";
import { GRID_TABLE, GRID_TABLE_SOURCE } from "./grid-table.ts";

/** A grid's carbon intensity for one zone (a country), and how it was obtained. */
export interface Intensity {
  /** ISO 3166-1 alpha-2. */
  zone: string;
  /** gCO2e per kWh, location-based. */
  gPerKwh: number;
  /** e.g. "ember:2023" (the shipped table) or "live:<host>". */
  source: string;
  /** The year the figure averages (the table's); null for a live figure. */
  year: number | null;
  confidence: EnergyConfidence;
}

export interface LiveSourceOptions {
  /**
   * The operator's live source: a URL with `{zone}` (upper case) or `{zone_lower}` in it, answering
   * Electricity Maps' shape (`{"carbonIntensity": 302, ...}`) or Energy-Charts' (`{"co2eq": [...]}`).
   */
  url: string;
  /** Sent as `auth-token` (Electricity Maps' header), when set. */
  token?: string | undefined;
  /** How long a live figure is used before it is asked again. */
  refreshMs?: number;
  /** How long a source that failed is left alone (the table answers meanwhile). */
  retryMs?: number;
  timeoutMs?: number;
  /**
   * How long an answer waits for a zone's first live figure (later ones are refreshed in the
   * background, the last one used meanwhile): past it, the table's figure, labelled low.
   */
  waitMs?: number;
}

interface Cached {
  at: number;
  value: Intensity | undefined;
}

/**
 * Grid intensity per zone: the shipped table (Ember's yearly averages), or the operator's live source
 * when one is configured. A live source that is down or answers garbage never fails a request: the
 * table's figure is used, labelled `low` (an average standing in for the hour's figure).
 */
export class GridIntensity {
  readonly #live: Required<Omit<LiveSourceOptions, "token">> & { token: string | undefined };
  readonly #cache = new Map<string, Cached>();
  readonly #inFlight = new Map<string, Promise<Intensity | undefined>>();
  readonly #log: Pick<Logger, "warn"> | undefined;
  readonly #enabled: boolean;

  constructor(live?: LiveSourceOptions, log?: Pick<Logger, "warn">) {
    this.#enabled = live !== undefined;
    this.#live = {
      url: live?.url ?? "",
      token: live?.token,
      refreshMs: live?.refreshMs ?? 15 * 60_000,
      retryMs: live?.retryMs ?? 60_000,
      timeoutMs: live?.timeoutMs ?? 2_000,
      waitMs: live?.waitMs ?? 250,
    };
    this.#log = log;
  }

  /** The intensity for `zone` now; undefined when the zone is unknown (no country, or not in the table). */
  async of(zone: string | null): Promise<Intensity | undefined> {
    if (zone === null) return undefined;
    const z = zone.toUpperCase();
    if (!this.#enabled) return tableFigure(z, "medium");
    const hit = this.#cache.get(z);
    const fresh = hit && Date.now() - hit.at < (hit.value ? this.#live.refreshMs : this.#live.retryMs);
    if (fresh) return hit.value ?? tableFigure(z, "low");
    let pending = this.#inFlight.get(z);
    if (!pending) {
      pending = this.#fetch(z).finally(() => this.#inFlight.delete(z));
      this.#inFlight.set(z, pending);
    }
    // A source that is slow never holds an answer for long: the last figure while it is refreshed; a
    // zone's first, awaited up to waitMs, else the table's.
    let timer: NodeJS.Timeout | undefined;
    const waited = hit?.value
      ? undefined
      : new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), this.#live.waitMs);
        });
    const value = waited ? await Promise.race([pending, waited]) : hit?.value;
    clearTimeout(timer);
    return value ?? tableFigure(z, "low");
  }

  /** The zone's live figure; undefined when the source fails (then the table answers until a retry). */
  async #fetch(zone: string): Promise<Intensity | undefined> {
    const url = this.#live.url.replaceAll("{zone}", zone).replaceAll("{zone_lower}", zone.toLowerCase());
    let value: Intensity | undefined;
    try {
      const res = await request(url, {
        headers: this.#live.token ? { "auth-token": this.#live.token } : {},
        headersTimeout: this.#live.timeoutMs,
        bodyTimeout: this.#live.timeoutMs,
        signal: AbortSignal.timeout(this.#live.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}`);
      const g = liveFigure(JSON.parse(text));
      if (g === undefined) throw new Error("its answer has no carbon intensity in a shape we read");
      value = { zone, gPerKwh: g, source: `live:${new URL(url).host}`, year: null, confidence: "high" };
    } catch (err) {
      // The URL may hold a token: only its host is logged.
      this.#log?.warn(
        { zone, source: safeHost(url), err: (err as Error).message },
        "live carbon intensity unavailable; using the yearly table",
      );
    }
    this.#cache.set(zone, { at: Date.now(), value });
    return value;
  }
}

/** The shipped table's figure for a zone. */
export function tableFigure(zone: string, confidence: EnergyConfidence): Intensity | undefined {
  const row = GRID_TABLE[zone];
  if (!row) return undefined;
  return { zone, gPerKwh: row[0], source: `ember:${row[1]}`, year: row[1], confidence };
}

export { GRID_TABLE_SOURCE };

/** A plausible gCO2e/kWh from Electricity Maps' or Energy-Charts' JSON (the latest non-null figure). */
function liveFigure(body: unknown): number | undefined {
  if (!body || typeof body !== "object") return undefined;
  const o = body as { carbonIntensity?: unknown; co2eq?: unknown };
  let v: unknown = o.carbonIntensity;
  if (v === undefined && Array.isArray(o.co2eq)) v = o.co2eq.findLast((x) => typeof x === "number");
  // No grid emits more than coal does (~1,100 g/kWh); beyond 2,000 the answer is not a figure.
  return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 2_000 ? v : undefined;
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(not a URL)";
  }
}
