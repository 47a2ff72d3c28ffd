import { readdir, readFile, realpath } from "node:fs/promises";
import { join } from "node:path";

export const HWMON_ROOT = "/sys/class/hwmon";

/** A GPU driver's hwmon: amdgpu reports power1_average (µW); i915 and xe report energy1_input (µJ). */
export interface HwmonGpu {
  /** hwmon directory, e.g. /sys/class/hwmon/hwmon3 */
  dir: string;
  driver: string;
  /** The DRM card it belongs to (card0 → 0), when its device links to one; else the order found. */
  index: number;
  energyFile: string | undefined;
  powerFile: string | undefined;
}

const GPU_DRIVERS = new Set(["amdgpu", "i915", "xe"]);

async function readable(path: string): Promise<boolean> {
  try {
    return /^\d+\s*$/.test(await readFile(path, "utf8"));
  } catch {
    return false;
  }
}

/** The GPUs whose driver exposes a readable energy counter or power figure in hwmon. */
export async function findHwmonGpus(root = HWMON_ROOT): Promise<HwmonGpu[]> {
  let entries: string[];
  try {
    entries = (await readdir(root)).sort();
  } catch {
    return [];
  }
  const found: HwmonGpu[] = [];
  for (const entry of entries) {
    const dir = join(root, entry);
    const driver = (await readFile(join(dir, "name"), "utf8").catch(() => "")).trim();
    if (!GPU_DRIVERS.has(driver)) continue;
    const energy = join(dir, "energy1_input");
    const power = [join(dir, "power1_average"), join(dir, "power1_input")];
    const energyFile = (await readable(energy)) ? energy : undefined;
    let powerFile: string | undefined;
    for (const p of power) if (powerFile === undefined && (await readable(p))) powerFile = p;
    if (energyFile === undefined && powerFile === undefined) continue;
    const device = await realpath(join(dir, "device")).catch(() => "");
    const drm = await readdir(join(device, "drm")).catch(() => [] as string[]);
    const card = drm.map((d) => /^card(\d+)$/.exec(d)?.[1]).find((n) => n !== undefined);
    found.push({
      dir,
      driver,
      index: card === undefined ? found.length : Number(card),
      energyFile,
      powerFile,
    });
  }
  return found;
}

/** A hwmon file's integer (µW or µJ) scaled to W or J; undefined when unreadable or not a number. */
export async function readHwmonMicro(path: string): Promise<number | undefined> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    return /^\d+$/.test(text) ? Number(text) / 1e6 : undefined;
  } catch {
    return undefined;
  }
}
