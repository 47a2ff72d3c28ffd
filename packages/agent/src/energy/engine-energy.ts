import type { EnergyMethod, EnergyReading } from "@beta9/protocol";
import type { ServedModel } from "../engines/engine.ts";
import { ProcessTreeCpu } from "./cpu-time.ts";
import type { MachinePower } from "./machine-power.ts";
import { EnergyMeter, type MeteredAnswer } from "./meter.ts";
import { energyProbe } from "./probe.ts";
import type { EnergyPart } from "./reading.ts";

const JOULES_PER_WH = 3600;

/**
 * One energy meter per running engine process (the builtin engine serves several models from one
 * process: they share its meter, and its energy is split across all their answers), and the
 * machine's totals by method for /metrics.
 */
export class EngineEnergy {
  readonly #power: Promise<MachinePower>;
  readonly #meters = new Map<string, { pid: number | undefined; meter: EnergyMeter }>();
  readonly #bucketMs: number | undefined;
  /** Wh metered on this machine's engines since start, by method. */
  readonly whByMethod = new Map<EnergyMethod, number>();
  /** Watts over the last bucket, for /status. */
  lastWatts: number | undefined;
  #lastBucketAt = Date.now();

  constructor(power: Promise<MachinePower>, opts: { bucketMs?: number } = {}) {
    this.#power = power;
    this.#bucketMs = opts.bucketMs;
  }

  #count(parts: EnergyPart[]): void {
    const now = Date.now();
    let joules = 0;
    for (const p of parts) {
      joules += p.joules;
      this.whByMethod.set(p.method, (this.whByMethod.get(p.method) ?? 0) + p.joules / JOULES_PER_WH);
    }
    const seconds = (now - this.#lastBucketAt) / 1000;
    this.#lastBucketAt = now;
    if (seconds > 0) this.lastWatts = joules / seconds;
  }

  async #meter(served: ServedModel): Promise<EnergyMeter> {
    const power = await this.#power;
    const key = `${served.engine} ${served.endpoint}`;
    const pid = served.pid?.();
    const known = this.#meters.get(key);
    if (known !== undefined && known.pid === pid) return known.meter;
    // A restarted engine has a new process: its meter starts over.
    known?.meter.close();
    const tree = pid === undefined ? undefined : new ProcessTreeCpu(pid);
    const meter = new EnergyMeter(energyProbe(power, { cpuSeconds: async () => tree?.read(), gpus: "all" }), {
      bucketMs: this.#bucketMs,
      onBucket: (parts) => this.#count(parts),
    });
    this.#meters.set(key, { pid, meter });
    return meter;
  }

  /** Meters one answer of `served`; never throws (an answer is never refused for want of a meter). */
  async begin(served: ServedModel): Promise<MeteredAnswer> {
    try {
      return (await this.#meter(served)).begin();
    } catch {
      return { tokens: () => {}, end: async (): Promise<EnergyReading | undefined> => undefined };
    }
  }

  async close(): Promise<void> {
    for (const { meter } of this.#meters.values()) meter.close();
    this.#meters.clear();
    (await this.#power).close();
  }
}

/** Server-sent events in a chunk, the [DONE] marker left out: one token each (engines send one per event). */
export function countStreamedTokens(chunk: Buffer): number {
  const text = chunk.toString("utf8");
  const events = text.match(/(^|\n)data: /g)?.length ?? 0;
  const done = text.match(/(^|\n)data: \[DONE\]/g)?.length ?? 0;
  return events - done;
}
