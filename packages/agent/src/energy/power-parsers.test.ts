import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAmdSmiPower, parseRocmSmiPower } from "./amd-power.ts";
import { parseMacmon, parsePowermetrics } from "./apple-power.ts";
import { parseNvidiaEnergy, parseNvidiaPower } from "./nvidia-power.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");

describe("nvidia-smi power", () => {
  it("reads power.draw from the recorded idle and loaded H100 (header with units, 212 columns)", () => {
    expect(parseNvidiaPower(recorded("nvidia-smi-h100-idle.csv"))).toEqual(new Map([[0, 69.85]]));
    expect(parseNvidiaPower(recorded("nvidia-smi-h100-load.csv"))).toEqual(new Map([[0, 631.95]]));
  });

  it("documented format: the agent's own query on two GPUs, one without a reading", () => {
    expect(parseNvidiaPower("0, 301.52\n1, [N/A]\n")).toEqual(new Map([[0, 301.52]]));
  });

  it("documented format: the energy counter in mJ becomes joules", () => {
    expect(parseNvidiaEnergy("0, 123456789\n1, 1000\n")).toEqual(
      new Map([
        [0, 123456.789],
        [1, 1],
      ]),
    );
  });

  it("throws on what current drivers print for the counter field, and on garbage", () => {
    expect(() =>
      parseNvidiaEnergy('Field "total_energy_consumption" is not a valid field to query.\n'),
    ).toThrow();
    expect(() => parseNvidiaPower("0, lots\n")).toThrow(/not a number/);
  });
});

describe("AMD power", () => {
  it("documented format: rocm-smi's average or current socket power per card", () => {
    const text = JSON.stringify({
      card0: { "Average Graphics Package Power (W)": "35.0" },
      card1: { "Current Socket Graphics Package Power (W)": "512.0" },
      card2: { "Average Graphics Package Power (W)": "N/A" },
      system: { "Driver version": "6.7.0" },
    });
    expect(parseRocmSmiPower(text)).toEqual(
      new Map([
        [0, 35],
        [1, 512],
      ]),
    );
  });

  it("documented format: amd-smi's list, bare or wrapped in gpu_data, N/A skipped", () => {
    const list = [
      { gpu: 0, power: { socket_power: { value: 220, unit: "W" } } },
      { gpu: 1, power: { socket_power: "N/A" } },
    ];
    expect(parseAmdSmiPower(JSON.stringify(list))).toEqual(new Map([[0, 220]]));
    expect(parseAmdSmiPower(JSON.stringify({ gpu_data: list }))).toEqual(new Map([[0, 220]]));
  });

  it("throws on garbage", () => {
    expect(() => parseRocmSmiPower("ERROR: GPU[0] : Not supported")).toThrow();
    expect(() => parseAmdSmiPower('{"error": "no GPUs"}')).toThrow(/no list/);
  });
});

describe("Apple power", () => {
  it("reads the recorded macmon sample: all_power, CPU and GPU in watts", () => {
    const p = parseMacmon(recorded("macmon-pipe-16gb.json"));
    expect(p.packageWatts).toBeCloseTo(0.2568, 4);
    expect(p.cpuWatts).toBeCloseTo(0.2523, 4);
    expect(p.gpuWatts).toBeCloseTo(0.00444, 5);
  });

  it("documented format: powermetrics' combined power in mW", () => {
    const text = [
      "**** Processor usage ****",
      "CPU Power: 4210 mW",
      "GPU Power: 1220 mW",
      "ANE Power: 0 mW",
      "Combined Power (CPU + GPU + ANE): 5430 mW",
    ].join("\n");
    expect(parsePowermetrics(text)).toEqual({ packageWatts: 5.43, cpuWatts: 4.21, gpuWatts: 1.22 });
  });

  it("throws on output without a sample", () => {
    expect(() => parseMacmon("macmon: permission denied")).toThrow(/no JSON/);
    expect(() => parsePowermetrics("powermetrics must be invoked as the superuser")).toThrow();
  });
});
