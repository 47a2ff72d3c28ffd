import { cpus } from "node:os";
import type { MachinePower } from "./machine-power.ts";
import type { EnergyPart } from "./reading.ts";

/** Cumulative energy so far of what a probe watches, one entry per source (joules only grow). */
export type EnergyProbe = () => Promise<EnergyPart[]>;

export interface ProbeTarget {
  /** CPU seconds the watched processes used so far; undefined when they cannot be read. */
  cpuSeconds: () => Promise<number | undefined>;
  /** The GPUs it uses: "all" for an engine, a job's assigned indices, or none. */
  gpus: "all" | readonly number[];
  /** Count CPU time from zero (a job's processes are all its own) rather than from the first reading (an engine's start-up is no answer's). */
  fromZero?: boolean;
  now?: () => number;
}

/** All CPUs' busy time so far (seconds), to take a process's share of a package counter. */
function machineBusySeconds(): number {
  let busy = 0;
  for (const { times } of cpus()) busy += times.user + times.nice + times.sys + times.irq;
  return busy / 1000;
}

/**
 * The energy of some processes and GPUs, as cumulative parts:
 * - CPU with RAPL: the packages' energy × the processes' share of all busy CPU time in each interval
 *   (`counter`, medium: the counter is the package's, the split is by time);
 * - CPU without: CPU seconds × the rated watts per core (`util_tdp`, low);
 * - CPU time unreadable: wall time × one core's rated watts (`static`, low), labelled as such;
 * - GPUs: each source's joules for the GPUs watched.
 */
export function energyProbe(power: MachinePower, target: ProbeTarget): EnergyProbe {
  const now = target.now ?? Date.now;
  const started = now();
  let raplShare = 0;
  let last: { rapl: number; cpu: number; busy: number } | undefined;
  let tdpJoules = 0;
  let lastCpu: number | undefined = target.fromZero ? 0 : undefined;
  return async () => {
    const parts: EnergyPart[] = [];
    const cpu = await target.cpuSeconds();
    const rapl = power.rapl === undefined || cpu === undefined ? undefined : await power.rapl.read();
    if (rapl !== undefined && cpu !== undefined) {
      const busy = machineBusySeconds();
      if (last !== undefined) {
        const busyDelta = busy - last.busy;
        const share = busyDelta > 0 ? Math.min(1, Math.max(0, (cpu - last.cpu) / busyDelta)) : 0;
        raplShare += Math.max(0, rapl - last.rapl) * share;
      }
      last = { rapl, cpu, busy };
      lastCpu = cpu;
      parts.push({
        source: power.rapl!.sources.join("+"),
        method: "counter",
        confidence: "medium",
        joules: raplShare,
      });
    } else if (cpu !== undefined) {
      // Counted from the first reading: CPU time before the probe started is not this probe's.
      if (lastCpu !== undefined) tdpJoules += Math.max(0, cpu - lastCpu) * power.rating.wattsPerCore;
      lastCpu = cpu;
      parts.push({ source: power.rating.source, method: "util_tdp", confidence: "low", joules: tdpJoules });
    } else {
      parts.push({
        source: `static:1 busy core, ${power.rating.source}`,
        method: "static",
        confidence: "low",
        joules: ((now() - started) / 1000) * power.rating.wattsPerCore,
      });
    }
    for (const gpu of power.gpus) {
      const joules = await gpu.read();
      let sum = 0;
      let any = false;
      for (const [index, j] of joules) {
        if (target.gpus !== "all" && !target.gpus.includes(index)) continue;
        sum += j;
        any = true;
      }
      if (any)
        parts.push({ source: gpu.source, method: gpu.method, confidence: gpu.confidence, joules: sum });
    }
    return parts;
  };
}
