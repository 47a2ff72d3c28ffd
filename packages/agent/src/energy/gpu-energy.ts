import type { EnergyConfidence, EnergyMethod } from "@beta9/protocol";
import { counterDelta } from "./counter.ts";

/** The energy each GPU used since the source was opened, in joules, by GPU index. */
export interface GpuEnergy {
  readonly method: EnergyMethod;
  readonly confidence: EnergyConfidence;
  /** What is read, e.g. "nvidia-smi:power.draw". */
  readonly source: string;
  /** Cumulative joules of the GPUs that could be read this time; a GPU missing from the map is unknown now. */
  read(): Promise<Map<number, number>>;
  close(): void;
}

/** A tool's answer: watts (power) or a cumulative counter in joules, by GPU index; undefined when it failed. */
export type GpuPoll = () => Promise<Map<number, number> | undefined>;

/** Polls so many times in a row without an answer: the source is dead until it answers again. */
const MISSES_BEFORE_UNKNOWN = 3;

/**
 * Power readings integrated over time (each reading held until the next, as nvidia-smi's power.draw
 * is itself an average over the last second). Polled every `intervalMs`; a poll still running when
 * the next is due is not doubled (a hung tool is bounded by the runner's timeout). After a few
 * failed polls in a row the GPUs read as unknown instead of holding an old figure forever.
 */
export class SampledGpuPower implements GpuEnergy {
  readonly method = "power_sampled" as const;
  readonly confidence = "medium" as const;
  readonly source: string;
  readonly #poll: GpuPoll;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  readonly #joules = new Map<number, number>();
  #watts = new Map<number, number>();
  #at: number;
  #misses = 0;
  #polling = false;

  constructor(source: string, poll: GpuPoll, opts: { intervalMs?: number; now?: () => number } = {}) {
    this.source = source;
    this.#poll = poll;
    this.#now = opts.now ?? Date.now;
    this.#at = this.#now();
    this.#timer = setInterval(() => void this.sample(), opts.intervalMs ?? 1_000);
    this.#timer.unref();
  }

  #integrate(): void {
    const now = this.#now();
    const seconds = Math.max(0, now - this.#at) / 1000;
    this.#at = now;
    if (this.#misses >= MISSES_BEFORE_UNKNOWN) return;
    for (const [gpu, watts] of this.#watts)
      this.#joules.set(gpu, (this.#joules.get(gpu) ?? 0) + watts * seconds);
  }

  /** One poll (the timer calls it; tests call it to step). */
  async sample(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const watts = await this.#poll().catch(() => undefined);
      this.#integrate();
      if (watts === undefined || watts.size === 0) this.#misses++;
      else {
        this.#misses = 0;
        this.#watts = watts;
      }
    } finally {
      this.#polling = false;
    }
  }

  async read(): Promise<Map<number, number>> {
    this.#integrate();
    if (this.#misses >= MISSES_BEFORE_UNKNOWN) return new Map();
    return new Map([...this.#watts.keys()].map((gpu) => [gpu, this.#joules.get(gpu) ?? 0]));
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

/**
 * A GPU's own energy counter; wraps and resets are handled per GPU as counterDelta says (a reset
 * loses that interval for that GPU, reported as unknown, not as zero). A counter in a file (hwmon)
 * is read when asked; one behind a tool (nvidia-smi) is polled every `intervalMs` instead, so an
 * answer's end never waits on a slow or hung tool.
 */
export class CounterGpuEnergy implements GpuEnergy {
  readonly method = "counter" as const;
  readonly confidence = "high" as const;
  readonly source: string;
  readonly #poll: GpuPoll;
  readonly #rangeJoules: number | undefined;
  readonly #last = new Map<number, number>();
  readonly #joules = new Map<number, number>();
  readonly #timer: NodeJS.Timeout | undefined;
  #known = new Map<number, number>();
  #polling: Promise<void> | undefined;

  constructor(source: string, poll: GpuPoll, opts: { rangeJoules?: number; intervalMs?: number } = {}) {
    this.source = source;
    this.#poll = poll;
    this.#rangeJoules = opts.rangeJoules;
    if (opts.intervalMs !== undefined) {
      this.#timer = setInterval(() => void this.#update(), opts.intervalMs);
      this.#timer.unref();
    }
  }

  /** Reads the counters once, so the first read() measures from here. */
  async start(): Promise<boolean> {
    const now = await this.#poll().catch(() => undefined);
    for (const [gpu, value] of now ?? []) this.#last.set(gpu, value);
    return this.#last.size > 0;
  }

  /** One poll at a time: a read that comes while one runs shares it. */
  #update(): Promise<void> {
    this.#polling ??= (async () => {
      const now = await this.#poll().catch(() => undefined);
      const known = new Map<number, number>();
      for (const [gpu, value] of now ?? []) {
        const last = this.#last.get(gpu);
        this.#last.set(gpu, value);
        const delta = last === undefined ? 0 : counterDelta(last, value, this.#rangeJoules);
        if (delta === undefined) continue;
        const total = (this.#joules.get(gpu) ?? 0) + delta;
        this.#joules.set(gpu, total);
        known.set(gpu, total);
      }
      this.#known = known;
    })().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async read(): Promise<Map<number, number>> {
    if (this.#timer === undefined) await this.#update();
    return new Map(this.#known);
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
