import { cpus } from "node:os";
import type { EnergyMethod, EnergyReading } from "@beta9/protocol";
import type { ServedModel } from "../engines/engine.ts";
import { ProcessTreeCpu } from "./cpu-time.ts";
import type { MachinePower } from "./machine-power.ts";
import { EnergyMeter, type MeteredAnswer } from "./meter.ts";
import { energyProbe } from "./probe.ts";
import { combineParts, type EnergyPart } from "./reading.ts";

const JOULES_PER_WH = 3600;
/** An engine serving nothing has its CPU time read this often (its energy still counts, later). */
const IDLE_BUCKET_MS = 10_000;

/** All CPUs' busy time so far, in seconds: the whole machine's CPU time. */
async function machineCpuSeconds(): Promise<number> {
  let busy = 0;
  for (const { times } of cpus()) busy += times.user + times.nice + times.sys + times.irq;
  return busy / 1000;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * One energy meter per running engine process (the builtin engine serves several models from one
 * process: they share its meter, and its energy is split across all their answers), one for the
 * whole machine (all its CPU time and GPUs), and the totals by method for /metrics.
 */
export class EngineEnergy {
  readonly #power: Promise<MachinePower>;
  readonly #meters = new Map<
    string,
    { pid: number | undefined; meter: EnergyMeter; tree: ProcessTreeCpu | undefined }
  >();
  readonly #bucketMs: number | undefined;
  /** Wh metered on this machine's engines since start, by method. */
  readonly whByMethod = new Map<EnergyMethod, number>();
  /** Wh the whole machine used since the agent started, by method. */
  readonly machineWhByMethod = new Map<EnergyMethod, number>();
  #machine: EnergyMeter | undefined;
  #machineWatts: { watts: number; method: EnergyMethod } | undefined;
  #machineBucketAt = Date.now();
  #closed = false;
  /** Set once the power sources are known; until then answers go unmetered rather than wait. */
  #ready: MachinePower | undefined;
  /** Watts over the last bucket, for /status. */
  lastWatts: number | undefined;
  #lastBucketAt = Date.now();

  constructor(power: Promise<MachinePower>, opts: { bucketMs?: number } = {}) {
    this.#power = power;
    this.#bucketMs = opts.bucketMs;
    void power.then((p) => {
      this.#ready = p;
      if (this.#closed) return;
      this.#machine = new EnergyMeter(energyProbe(p, { cpuSeconds: machineCpuSeconds, gpus: "all" }), {
        bucketMs: this.#bucketMs,
        onBucket: (parts) => {
          const joules = addWh(this.machineWhByMethod, parts);
          const now = Date.now();
          const seconds = (now - this.#machineBucketAt) / 1000;
          this.#machineBucketAt = now;
          const main = combineParts(parts);
          if (seconds > 0 && main !== undefined)
            this.#machineWatts = { watts: joules / seconds, method: main.method };
        },
      });
    });
  }

  #count(parts: EnergyPart[]): void {
    const now = Date.now();
    const joules = addWh(this.whByMethod, parts);
    const seconds = (now - this.#lastBucketAt) / 1000;
    this.#lastBucketAt = now;
    if (seconds > 0) this.lastWatts = joules / seconds;
  }

  #meter(served: ServedModel): EnergyMeter | undefined {
    const power = this.#ready;
    if (power === undefined || this.#closed) return undefined;
    const key = `${served.engine} ${served.endpoint}`;
    const pid = served.pid?.();
    const known = this.#meters.get(key);
    if (known !== undefined && known.pid === pid) return known.meter;
    // A restarted engine has a new process: its meter starts over; meters of engines gone are closed.
    known?.meter.close();
    known?.tree?.close();
    for (const [other, m] of this.#meters)
      if (!alive(m.pid)) {
        m.meter.close();
        m.tree?.close();
        this.#meters.delete(other);
      }
    // Read at every answer's end: its stat files stay open.
    const tree = pid === undefined ? undefined : new ProcessTreeCpu(pid, { keepOpen: true });
    const meter = new EnergyMeter(energyProbe(power, { cpuSeconds: async () => tree?.read(), gpus: "all" }), {
      bucketMs: this.#bucketMs,
      idleBucketMs: IDLE_BUCKET_MS,
      onBucket: (parts) => this.#count(parts),
    });
    this.#meters.set(key, { pid, meter, tree });
    return meter;
  }

  /** The whole machine's power over its last bucket, and how it was measured; undefined until measured. */
  machinePower(): { watts: number; method: EnergyMethod } | undefined {
    return this.#machineWatts;
  }

  /**
   * Meters one answer of `served`. Never throws and never waits: before the power sources are known
   * (the first seconds after start), or if anything fails, the answer goes unmetered and says nothing.
   */
  begin(served: ServedModel): MeteredAnswer {
    try {
      const meter = this.#meter(served);
      if (meter !== undefined) return meter.begin();
    } catch {
      // fall through: unmetered
    }
    return { tokens: () => {}, end: async (): Promise<EnergyReading | undefined> => undefined };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#machine?.close();
    for (const { meter, tree } of this.#meters.values()) {
      meter.close();
      tree?.close();
    }
    this.#meters.clear();
    (await this.#power).close();
  }
}

/** Adds each part's energy to its method's total; returns the joules added. */
function addWh(totals: Map<EnergyMethod, number>, parts: readonly EnergyPart[]): number {
  let joules = 0;
  for (const p of parts) {
    joules += p.joules;
    totals.set(p.method, (totals.get(p.method) ?? 0) + p.joules / JOULES_PER_WH);
  }
  return joules;
}

const DATA = Buffer.from("data: ");
const DONE = Buffer.from("[DONE]");

/**
 * Server-sent events in a chunk, the [DONE] marker left out: one token each (engines send one per
 * event). Read on the bytes (no string per chunk): every token of every stream passes here.
 */
export function countStreamedTokens(chunk: Buffer): number {
  let events = 0;
  for (let at = chunk.indexOf(DATA); at !== -1; at = chunk.indexOf(DATA, at + DATA.length)) {
    if (at > 0 && chunk[at - 1] !== 0x0a) continue;
    const from = at + DATA.length;
    if (chunk.compare(DONE, 0, DONE.length, from, Math.min(from + DONE.length, chunk.length)) !== 0) events++;
  }
  return events;
}
