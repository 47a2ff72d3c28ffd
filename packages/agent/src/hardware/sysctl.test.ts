import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseSysctlInteger, parseSysctlValue } from "./sysctl.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");

describe("sysctl", () => {
  it("reads the chip name from a recorded M1 listing", () => {
    expect(parseSysctlValue(recorded("sysctl-m1-machdep-cpu.txt"), "machdep.cpu.brand_string")).toBe(
      "Apple M1",
    );
  });

  it("reads the logical CPU count from a recorded M1 Pro listing", () => {
    expect(parseSysctlInteger(recorded("sysctl-m1pro-hw.txt"), "hw.ncpu")).toBe(10);
  });

  it("documented format: `sysctl -n` prints the bare value", () => {
    expect(parseSysctlValue("Apple M2 Ultra\n", "machdep.cpu.brand_string")).toBe("Apple M2 Ultra");
    expect(parseSysctlInteger("206158430208\n", "hw.memsize")).toBe(206_158_430_208);
  });

  it("throws a clear error on garbage", () => {
    expect(() => parseSysctlValue("", "hw.ncpu")).toThrow(/no value for hw.ncpu/);
    expect(() => parseSysctlValue(recorded("sysctl-m1pro-hw.txt"), "hw.memsize")).toThrow(
      /no value for hw.memsize/,
    );
    expect(() => parseSysctlInteger("sixteen", "hw.ncpu")).toThrow(/not an integer/);
    expect(() => parseSysctlInteger("99999999999999999999", "hw.memsize")).toThrow(/out of range/);
  });
});
