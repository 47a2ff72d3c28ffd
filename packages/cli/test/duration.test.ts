import { describe, expect, it } from "vitest";
import { parseDuration, shortDuration } from "../src/duration.ts";

describe("parseDuration", () => {
  it.each([
    ["30s", 30],
    ["15m", 900],
    ["1h", 3600],
    ["7d", 604_800],
    ["1h30m", 5400],
    [" 2H ", 7200],
    ["1.5h", 5400],
    ["10", 10],
  ])("%s is %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(["", "h", "1x", "-1h", "0s", "1 h"])("refuses %j", (text) => {
    expect(() => parseDuration(text)).toThrow(RangeError);
  });
});

describe("shortDuration", () => {
  it.each([
    [0, "0s"],
    [59, "59s"],
    [60, "1m"],
    [3599, "59m"],
    [3600, "1h"],
    [86_400 * 3 + 5, "3d"],
  ])("%i seconds reads %s", (seconds, text) => {
    expect(shortDuration(seconds)).toBe(text);
  });
});
