import { describe, expect, it, vi } from "vitest";
import { CounterGpuEnergy, SampledGpuPower } from "./gpu-energy.ts";
import { EnergyMeter } from "./meter.ts";
import type { EnergyPart } from "./reading.ts";

/** A probe the test moves by hand: cumulative joules of one CPU source and, optionally, one GPU source. */
function handProbe() {
  const state = { cpu: 0, gpu: undefined as number | undefined };
  const probe = async (): Promise<EnergyPart[]> => [
    { source: "tdp-table:test", method: "util_tdp", confidence: "low", joules: state.cpu },
    ...(state.gpu === undefined
      ? []
      : [
          {
            source: "nvidia-smi:power.draw",
            method: "power_sampled",
            confidence: "medium",
            joules: state.gpu,
          } as const,
        ]),
  ];
  return { state, probe };
}

const NEVER = 1e9; // buckets close only when the test or an answer closes them
const wh = (joules: number) => joules / 3600;

describe("energy meter", () => {
  it("splits each bucket by the tokens each answer produced in it", async () => {
    const { state, probe } = handProbe();
    const meter = new EnergyMeter(probe, { bucketMs: NEVER });
    const a = meter.begin();
    const b = meter.begin();
    a.tokens(3);
    b.tokens(1);
    state.cpu += 40; // bucket 1: a 30 J, b 10 J
    await meter.closeBucket();
    a.tokens(1);
    b.tokens(1);
    state.cpu += 10; // bucket 2: 5 J each
    await meter.closeBucket();
    b.tokens(2);
    state.cpu += 8; // bucket 3: a produced nothing: all 8 J to b
    const ra = await a.end(); // closes bucket 3 first
    expect(ra).toEqual({ wh: wh(35), method: "util_tdp", confidence: "low", sources: ["tdp-table:test"] });
    state.cpu += 6; // bucket 4: b alone
    const rb = await b.end();
    expect(rb?.wh).toBeCloseTo(wh(10 + 5 + 8 + 6), 12);
    meter.close();
  });

  it("gives an answer whose tokens it cannot see (non-streamed) the others' mean rate; idle energy is no one's", async () => {
    const { state, probe } = handProbe();
    const meter = new EnergyMeter(probe, { bucketMs: NEVER });
    state.cpu += 100; // before any answer: the engine idling
    await meter.closeBucket();
    const streamed = meter.begin();
    const whole = meter.begin();
    streamed.tokens(4);
    state.cpu += 30; // whole counts as 4 tokens too: 15 J each
    await meter.closeBucket();
    state.cpu += 10; // no tokens seen from anyone: an equal split
    const rWhole = await whole.end();
    expect(rWhole?.wh).toBeCloseTo(wh(15 + 5), 12);
    expect((await streamed.end())?.wh).toBeCloseTo(wh(15 + 5), 12);
    meter.close();
  });

  it("a figure mixing sources takes the method holding most energy and the lowest confidence", async () => {
    const { state, probe } = handProbe();
    state.gpu = 0;
    const meter = new EnergyMeter(probe, { bucketMs: NEVER });
    const a = meter.begin();
    state.cpu += 20;
    state.gpu += 300;
    const r = await a.end();
    expect(r).toEqual({
      wh: wh(320),
      method: "power_sampled",
      confidence: "low",
      sources: ["tdp-table:test", "nvidia-smi:power.draw"],
    });
    meter.close();
  });

  it("a source that fails for a while has its energy counted when it returns, never as a zero", async () => {
    let failing = false;
    let joules = 0;
    const meter = new EnergyMeter(
      async () => {
        if (failing) throw new Error("tool hung");
        return [{ source: "rapl:package-0", method: "counter", confidence: "medium", joules }];
      },
      { bucketMs: NEVER },
    );
    const a = meter.begin();
    failing = true;
    joules = 50;
    await meter.closeBucket();
    failing = false;
    joules = 70;
    expect((await a.end())?.wh).toBeCloseTo(wh(70), 12);
    meter.close();
  });

  it("answers that end together share one reading, each with its share of the bucket", async () => {
    let reads = 0;
    let joules = 0;
    const meter = new EnergyMeter(
      async () => {
        reads++;
        return [{ source: "tdp-table:test", method: "util_tdp", confidence: "low", joules }];
      },
      { bucketMs: NEVER },
    );
    await meter.closeBucket();
    const answers = Array.from({ length: 10 }, () => meter.begin());
    for (const [i, a] of answers.entries()) a.tokens(i + 1); // 55 tokens in all
    joules += 110;
    const before = reads;
    const readings = await Promise.all(answers.map((a) => a.end()));
    expect(reads - before).toBe(1);
    for (const [i, r] of readings.entries()) expect(r?.wh).toBeCloseTo(wh(2 * (i + 1)), 12);
    meter.close();
  });

  it("answers whose ends come in one turn of the event loop, each in its own callback, share one reading", async () => {
    let reads = 0;
    const { state, probe } = handProbe();
    const meter = new EnergyMeter(
      async () => {
        reads++;
        return probe();
      },
      { bucketMs: NEVER },
    );
    await meter.closeBucket();
    const answers = Array.from({ length: 10 }, () => meter.begin());
    for (const a of answers) a.tokens(1);
    state.cpu += 50;
    const before = reads;
    const readings = await Promise.all(
      // Immediates queued together run in one pass (timers may straddle a millisecond and two turns).
      answers.map((a) => new Promise((resolve) => setImmediate(() => resolve(a.end())))),
    );
    expect(reads - before).toBe(1);
    for (const r of readings) expect((r as { wh: number } | undefined)?.wh).toBeCloseTo(wh(5), 12);
    meter.close();
  });

  it("reads an idle engine only every idleBucketMs, and its idle energy is still no answer's", async () => {
    vi.useFakeTimers();
    try {
      let reads = 0;
      const { state, probe } = handProbe();
      const counted: number[] = [];
      const meter = new EnergyMeter(
        async () => {
          reads++;
          return probe();
        },
        { bucketMs: 1_000, idleBucketMs: 10_000, onBucket: (parts) => counted.push(parts[0]?.joules ?? 0) },
      );
      await vi.advanceTimersByTimeAsync(0);
      state.cpu += 100; // the engine idling, nothing open
      await vi.advanceTimersByTimeAsync(5_000);
      expect(reads).toBe(1); // the baseline only
      const a = meter.begin();
      const b = meter.begin(); // in the same moment: neither gets the idle energy
      await vi.advanceTimersByTimeAsync(0); // the idle bucket's end is read at once
      expect(reads).toBe(2);
      a.tokens(1);
      b.tokens(1);
      state.cpu += 20;
      const ended = Promise.all([a.end(), b.end()]);
      await vi.advanceTimersByTimeAsync(0);
      const [ra, rb] = await ended;
      expect(ra?.wh).toBeCloseTo(wh(10), 12);
      expect(rb?.wh).toBeCloseTo(wh(10), 12);
      // The machine's totals still have it all.
      expect(counted.reduce((x, y) => x + y, 0)).toBeCloseTo(120, 9);
      const before = reads;
      await vi.advanceTimersByTimeAsync(9_000);
      expect(reads - before).toBe(0);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(reads - before).toBe(1);
      meter.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("an answer begun while an idle bucket's reading runs gets none of the idle energy", async () => {
    vi.useFakeTimers();
    try {
      const { state, probe } = handProbe();
      let reads = 0;
      let gate: Promise<void> | undefined;
      const meter = new EnergyMeter(
        async () => {
          reads++;
          const parts = await probe();
          if (gate) await gate;
          return parts;
        },
        { bucketMs: 1_000, idleBucketMs: 10_000 },
      );
      // Fake time moves a millisecond at a time until the meter has done what is awaited.
      const until = async (cond: () => boolean) => {
        for (let i = 0; i < 100 && !cond(); i++) await vi.advanceTimersByTimeAsync(1);
        expect(cond()).toBe(true);
      };
      await until(() => reads === 1); // the baseline
      state.cpu += 100; // ten idle seconds
      let open!: () => void;
      gate = new Promise<void>((resolve) => (open = resolve));
      await vi.advanceTimersByTimeAsync(9_990);
      await until(() => reads === 2); // the idle bucket's end is being read, held
      const a = meter.begin();
      a.tokens(1);
      gate = undefined;
      open();
      await until(() => reads === 3); // a joins after a reading of its own
      await vi.advanceTimersByTimeAsync(1);
      state.cpu += 20;
      const got: { done: boolean; wh?: number | undefined } = { done: false };
      void a.end().then((r) => {
        got.done = true;
        got.wh = r?.wh;
      });
      await until(() => got.done);
      expect(got.wh).toBeCloseTo(wh(20), 12);
      meter.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("an answer with nothing measurable says so (undefined), not zero", async () => {
    const meter = new EnergyMeter(async () => [], { bucketMs: NEVER });
    expect(await meter.begin().end()).toBeUndefined();
    meter.close();
  });
});

describe("GPU energy sources", () => {
  it("sampled power is integrated over time, and reads unknown after repeated failed polls", async () => {
    let now = 0;
    let answer: Map<number, number> | undefined = new Map([[0, 300]]);
    const gpu = new SampledGpuPower("nvidia-smi:power.draw", async () => answer, {
      intervalMs: NEVER,
      now: () => now,
    });
    await gpu.sample();
    now += 2_000;
    await gpu.sample(); // 300 W for 2 s
    expect(await gpu.read()).toEqual(new Map([[0, 600]]));
    answer = undefined; // the tool hangs (the runner times it out) or prints garbage
    for (let i = 0; i < 3; i++) {
      now += 1_000;
      await gpu.sample();
    }
    expect(await gpu.read()).toEqual(new Map());
    gpu.close();
  });

  it("a GPU counter survives a wrap and reports a reset as unknown for that GPU", async () => {
    let values = new Map([
      [0, 900],
      [1, 10],
    ]);
    const gpu = new CounterGpuEnergy("hwmon:energy1_input", async () => values, { rangeJoules: 1000 });
    expect(await gpu.start()).toBe(true);
    values = new Map([
      [0, 50], // wrapped: 100 + 50
      [1, 20],
    ]);
    expect(await gpu.read()).toEqual(
      new Map([
        [0, 150],
        [1, 10],
      ]),
    );
    values = new Map([
      [0, 60],
      [1, 5], // backwards by little: a reset
    ]);
    expect(await gpu.read()).toEqual(new Map([[0, 160]]));
  });
});
