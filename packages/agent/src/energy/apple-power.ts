/** `macmon pipe -s 1 -i 1000`: one JSON line per sample, powers in watts (no root needed). */
export const MACMON_ARGS = ["pipe", "-s", "1", "-i", "1000"];
/** `powermetrics` needs root; one sample of the CPU and GPU power samplers. */
export const POWERMETRICS_ARGS = ["-n", "1", "-i", "1000", "--samplers", "cpu_power,gpu_power"];

export interface ApplePower {
  /** CPU + GPU + ANE package power, watts. */
  packageWatts: number;
  cpuWatts: number | undefined;
  gpuWatts: number | undefined;
}

function finite(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** The last JSON line macmon printed. Throws on anything else. */
export function parseMacmon(text: string): ApplePower {
  const line = text
    .trim()
    .split(/\r?\n/)
    .filter((l) => l.trim().startsWith("{"))
    .at(-1);
  if (line === undefined) throw new Error("macmon printed no JSON sample");
  const sample = JSON.parse(line) as Record<string, unknown>;
  const cpu = finite(sample.cpu_power);
  const gpu = finite(sample.gpu_power);
  const all =
    finite(sample.all_power) ??
    (cpu !== undefined ? cpu + (gpu ?? 0) + (finite(sample.ane_power) ?? 0) : undefined);
  if (all === undefined) throw new Error("macmon's sample has no all_power or cpu_power");
  return { packageWatts: all, cpuWatts: cpu, gpuWatts: gpu };
}

/** powermetrics' text ("CPU Power: 1234 mW", "Combined Power (CPU + GPU + ANE): 1290 mW"). Throws when no power line is found. */
export function parsePowermetrics(text: string): ApplePower {
  const mw = (label: RegExp) => {
    const match = new RegExp(`^${label.source}:\\s*(\\d+(?:\\.\\d+)?)\\s*mW\\s*$`, "m").exec(text);
    return match === null ? undefined : Number(match[1]) / 1000;
  };
  const cpu = mw(/CPU Power/);
  const gpu = mw(/GPU Power/);
  const combined = mw(/Combined Power \(CPU \+ GPU \+ ANE\)/);
  const all = combined ?? (cpu !== undefined ? cpu + (gpu ?? 0) : undefined);
  if (all === undefined) throw new Error("powermetrics printed no CPU or combined power line");
  return { packageWatts: all, cpuWatts: cpu, gpuWatts: gpu };
}
