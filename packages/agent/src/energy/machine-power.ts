import { access, constants } from "node:fs/promises";
import type { Hardware } from "@beta9/protocol";
import { type CommandRunner, createExecFileRunner } from "../hardware/runner.ts";
import { AMD_SMI_POWER_ARGS, parseAmdSmiPower, parseRocmSmiPower, ROCM_SMI_POWER_ARGS } from "./amd-power.ts";
import { MACMON_ARGS, POWERMETRICS_ARGS, parseMacmon, parsePowermetrics } from "./apple-power.ts";
import { type CpuRating, cpuRating } from "./cpu-rating.ts";
import { CounterGpuEnergy, type GpuEnergy, type GpuPoll, SampledGpuPower } from "./gpu-energy.ts";
import { findHwmonGpus, HWMON_ROOT, readHwmonMicro } from "./hwmon.ts";
import {
  NVIDIA_ENERGY_FIELDS,
  NVIDIA_POWER_FIELDS,
  parseNvidiaEnergy,
  parseNvidiaPower,
} from "./nvidia-power.ts";
import { RAPL_ROOT, RaplCounter } from "./rapl.ts";

/** What this machine's power can be read from, best source first for each part. */
export interface MachinePower {
  /** The CPU packages' counter, where readable; else CPU time × `rating`. */
  rapl: RaplCounter | undefined;
  rating: CpuRating;
  /** GPU (and Apple SoC) sources; each covers the GPU indices it reads. */
  gpus: GpuEnergy[];
  close(): void;
}

export interface MachinePowerOptions {
  hardware: Hardware;
  run?: CommandRunner;
  raplRoot?: string;
  hwmonRoot?: string;
  platform?: NodeJS.Platform;
  isRoot?: boolean;
  /** Poll period of sampled sources. */
  intervalMs?: number;
  onProblem?: (source: string, message: string) => void;
}

// A power tool gets 3 s: one that hangs must not stall the meter (polls never overlap).
const powerRunner = createExecFileRunner({ timeoutMs: 3_000, maxBufferBytes: 1024 * 1024 });

/** A tool's output through a parser; a missing tool, a timeout or garbage is undefined, never a crash. */
function poller(
  run: CommandRunner,
  cmd: string,
  args: string[],
  parse: (text: string) => Map<number, number>,
): GpuPoll {
  return async () => {
    const out = await run(cmd, args);
    if (out === null) return undefined;
    try {
      return parse(out.stdout);
    } catch {
      return undefined;
    }
  };
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/**
 * Finds this machine's power sources once, at start: NVIDIA's energy counter else sampled power.draw;
 * AMD's amd-smi or rocm-smi power, or hwmon; Intel GPUs' hwmon energy counter; RAPL for the CPU where
 * readable; on a Mac, macmon (no root) or powermetrics (root) for the whole SoC. What is not found
 * is not guessed: the CPU falls back to its rating, and a GPU with no source gets no figure.
 */
export async function openMachinePower(opts: MachinePowerOptions): Promise<MachinePower> {
  try {
    return await detect(opts);
  } catch (error) {
    // Whatever broke, answers and jobs still get the CPU's rating (util_tdp), never a crash.
    opts.onProblem?.("power", `could not look for power sources: ${(error as Error).message}`);
    return {
      rapl: undefined,
      rating: cpuRating(opts.hardware.cpu_model, opts.hardware.cpu_cores),
      gpus: [],
      close() {},
    };
  }
}

async function detect(opts: MachinePowerOptions): Promise<MachinePower> {
  const run = opts.run ?? powerRunner;
  const problem = opts.onProblem ?? (() => {});
  const sample = (source: string, poll: GpuPoll) =>
    new SampledGpuPower(source, poll, { intervalMs: opts.intervalMs ?? 1_000 });
  const gpus: GpuEnergy[] = [];
  const vendors = new Set(opts.hardware.gpus.map((g) => g.vendor));

  if (vendors.has("nvidia")) {
    const counter = new CounterGpuEnergy(
      "nvidia-smi:total_energy_consumption",
      poller(
        run,
        "nvidia-smi",
        [`--query-gpu=${NVIDIA_ENERGY_FIELDS.join(",")}`, "--format=csv,noheader,nounits"],
        parseNvidiaEnergy,
      ),
      { intervalMs: opts.intervalMs ?? 1_000 },
    );
    if (await counter.start()) gpus.push(counter);
    else {
      counter.close();
      const poll = poller(
        run,
        "nvidia-smi",
        [`--query-gpu=${NVIDIA_POWER_FIELDS.join(",")}`, "--format=csv,noheader,nounits"],
        parseNvidiaPower,
      );
      if ((await poll()) !== undefined) gpus.push(sample("nvidia-smi:power.draw", poll));
      else problem("nvidia-smi", "nvidia-smi printed no power.draw: NVIDIA GPUs get no energy figure");
    }
  }

  const hwmon = await findHwmonGpus(opts.hwmonRoot ?? HWMON_ROOT);
  if (vendors.has("amd")) {
    const amdSmi = poller(run, "amd-smi", AMD_SMI_POWER_ARGS, parseAmdSmiPower);
    const rocmSmi = poller(run, "rocm-smi", ROCM_SMI_POWER_ARGS, parseRocmSmiPower);
    const amdHwmon = hwmon.filter((h) => h.driver === "amdgpu" && h.powerFile !== undefined);
    if (((await amdSmi())?.size ?? 0) > 0) gpus.push(sample("amd-smi:socket_power", amdSmi));
    else if (((await rocmSmi())?.size ?? 0) > 0) gpus.push(sample("rocm-smi:power", rocmSmi));
    else if (amdHwmon.length > 0)
      gpus.push(
        sample("hwmon:power1_average", async () => {
          const out = new Map<number, number>();
          for (const h of amdHwmon) {
            const w = await readHwmonMicro(h.powerFile as string);
            if (w !== undefined) out.set(h.index, w);
          }
          return out;
        }),
      );
    else problem("amd", "no amd-smi, rocm-smi or hwmon power: AMD GPUs get no energy figure");
  }

  const intel = hwmon.filter((h) => (h.driver === "i915" || h.driver === "xe") && h.energyFile !== undefined);
  if (vendors.has("intel") && intel.length > 0) {
    const counter = new CounterGpuEnergy("hwmon:energy1_input", async () => {
      const out = new Map<number, number>();
      for (const h of intel) {
        const j = await readHwmonMicro(h.energyFile as string);
        if (j !== undefined) out.set(h.index, j);
      }
      return out;
    });
    if (await counter.start()) gpus.push(counter);
  }

  if ((opts.platform ?? process.platform) === "darwin" && vendors.has("apple")) {
    // The whole SoC (CPU + GPU + ANE) as GPU 0: on a Mac the engine uses both, and they share one package.
    const macmon = poller(run, "macmon", MACMON_ARGS, (t) => new Map([[0, parseMacmon(t).packageWatts]]));
    const root = opts.isRoot ?? process.getuid?.() === 0;
    const powermetrics = poller(
      run,
      "powermetrics",
      POWERMETRICS_ARGS,
      (t) => new Map([[0, parsePowermetrics(t).packageWatts]]),
    );
    if ((await macmon()) !== undefined) gpus.push(sample("macmon:all_power", macmon));
    else if (root && (await isExecutable("/usr/bin/powermetrics")) && (await powermetrics()) !== undefined)
      gpus.push(sample("powermetrics:combined_power", powermetrics));
  }

  // B9AGENT_POWERCAP_ROOT: where powercap is mounted when not at /sys/class/powercap (a container's bind mount).
  const rapl = await RaplCounter.open(opts.raplRoot ?? process.env.B9AGENT_POWERCAP_ROOT ?? RAPL_ROOT);
  return {
    rapl,
    rating: cpuRating(opts.hardware.cpu_model, opts.hardware.cpu_cores),
    gpus,
    close() {
      for (const g of gpus) g.close();
    },
  };
}
