import type { EnergyReading } from "@beta9/protocol";
import { cgroupCpuSeconds, ProcessTreeCpu } from "./cpu-time.ts";
import type { MachinePower } from "./machine-power.ts";
import { EnergyMeter } from "./meter.ts";
import { energyProbe } from "./probe.ts";

export interface JobEnergyTarget {
  /** The job's first process (its tree is followed while the job has no cgroup that counts CPU). */
  pid: number;
  /** The job's cgroup directory, when it has one. */
  cgroupDir?: string | undefined;
  /** The GPUs assigned to it. */
  gpus: readonly number[];
}

/** Measures one run from now until stop(). */
export interface JobEnergy {
  /** Call before the job's cgroup goes: the energy its processes and GPUs used, or undefined. */
  stop(): Promise<EnergyReading | undefined>;
}

/**
 * A job's energy: its processes' CPU time (the cgroup's usage_usec, which counts every process it
 * ever held, else the process tree, read each second) at the CPU's rating or RAPL share, plus its
 * own GPUs' counters or sampled power over the run. It is the only answer of its own meter.
 */
export async function meterJob(
  power: Promise<MachinePower> | undefined,
  target: JobEnergyTarget,
): Promise<JobEnergy> {
  try {
    if (power === undefined) return { stop: async () => undefined };
    // Before any await: a short job may end, and be reaped, while the machine's power is awaited.
    const tree = new ProcessTreeCpu(target.pid, { ownChild: true });
    const machine = await power;
    const cgroup =
      target.cgroupDir !== undefined && (await cgroupCpuSeconds(target.cgroupDir)) !== undefined
        ? target.cgroupDir
        : undefined;
    const meter = new EnergyMeter(
      energyProbe(machine, {
        cpuSeconds: () => (cgroup !== undefined ? cgroupCpuSeconds(cgroup) : tree.read()),
        gpus: target.gpus,
        fromZero: true,
      }),
    );
    const run = meter.begin();
    return {
      async stop() {
        try {
          return await run.end();
        } finally {
          meter.close();
        }
      },
    };
  } catch {
    return { stop: async () => undefined };
  }
}
