import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { counterDelta } from "./counter.ts";

/** Where Linux shows RAPL (Intel, and AMD since Zen under the same driver name). */
export const RAPL_ROOT = "/sys/class/powercap";

interface Zone {
  /** "intel-rapl:0" */
  id: string;
  /** "package-0" */
  name: string;
  rangeUj: number | undefined;
  lastUj: number;
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The CPU packages' RAPL energy counters, read as a cumulative joule count that survives wraps.
 * Only top-level zones (intel-rapl:N, the packages): their sub-zones (cores, dram) are inside the
 * package figure or beside it, and adding them would count twice. Since Linux 5.10 energy_uj is
 * readable by root only (CVE-2020-8694): then there is no RAPL here and open() returns undefined.
 */
export class RaplCounter {
  readonly #root: string;
  readonly #zones: Zone[];
  #joules = 0;

  private constructor(root: string, zones: Zone[]) {
    this.#root = root;
    this.#zones = zones;
  }

  static async open(root = RAPL_ROOT): Promise<RaplCounter | undefined> {
    let entries: string[];
    try {
      entries = await readdir(root);
    } catch {
      return undefined;
    }
    const zones: Zone[] = [];
    for (const id of entries.filter((e) => /^intel-rapl:\d+$/.test(e)).sort()) {
      const lastUj = await readNumber(join(root, id, "energy_uj"));
      if (lastUj === undefined) continue;
      const name = (await readFile(join(root, id, "name"), "utf8").catch(() => id)).trim();
      zones.push({ id, name, lastUj, rangeUj: await readNumber(join(root, id, "max_energy_range_uj")) });
    }
    return zones.length === 0 ? undefined : new RaplCounter(root, zones);
  }

  /** "rapl:package-0" for each package read. */
  get sources(): string[] {
    return this.#zones.map((z) => `rapl:${z.name}`);
  }

  /**
   * Joules used by all packages since open(); undefined when a zone could not be read or went
   * backwards this time (the interval is unknown; the next read starts from the new value).
   */
  async read(): Promise<number | undefined> {
    let known = true;
    for (const zone of this.#zones) {
      const now = await readNumber(join(this.#root, zone.id, "energy_uj"));
      if (now === undefined) {
        known = false;
        continue;
      }
      const delta = counterDelta(zone.lastUj, now, zone.rangeUj);
      zone.lastUj = now;
      if (delta === undefined) known = false;
      else this.#joules += delta / 1e6;
    }
    return known ? this.#joules : undefined;
  }
}
