import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it("reads the forms people type", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("15m")).toBe(900_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("7d")).toBe(604_800_000);
    expect(parseDuration("2.5")).toBe(2_500);
  });
  it("refuses what is not a duration", () => {
    for (const bad of ["", "h", "1x", "-1s", "1 h 2", "1h-"])
      expect(() => parseDuration(bad)).toThrow(/not a duration/);
  });
});
