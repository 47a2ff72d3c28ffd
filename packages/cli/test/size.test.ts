import { describe, expect, it } from "vitest";
import { formatSize, parseSize } from "../src/size.ts";

describe("parseSize", () => {
  it.each([
    ["8GB", 8e9],
    ["8gb", 8e9],
    ["16GiB", 16 * 2 ** 30],
    ["16 GiB", 16 * 2 ** 30],
    ["512MiB", 512 * 2 ** 20],
    ["500MB", 500e6],
    ["1.5GB", 1.5e9],
    ["0.5GiB", 2 ** 29],
    ["2TB", 2e12],
    ["64KiB", 65_536],
    ["1024", 1024],
    ["1024B", 1024],
    [" 24GB ", 24e9],
  ])("%s is %i bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "GB", "8 XB", "-8GB", "8,5GB", "eight GB", "1e3GB", "99999999999TB"])("refuses %j", (text) => {
    expect(() => parseSize(text)).toThrow(RangeError);
  });

  it("asks which unit a bare G or M means", () => {
    expect(() => parseSize("8G")).toThrow('"8G": "G" could mean 8GB or 8GiB; say which');
    expect(() => parseSize("512m")).toThrow(/512MB or 512MiB/);
  });
});

describe("formatSize", () => {
  it.each([
    [8e9, "8 GB"],
    [16 * 2 ** 30, "16 GiB"],
    [512 * 2 ** 20, "512 MiB"],
    [2 ** 40, "1 TiB"],
    [1.5e9, "1500 MB"],
    [500, "500 B"],
    [2 ** 30 + 1, "1.0 GiB"],
  ])("%i bytes reads %s", (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it("reads back what parseSize took", () => {
    for (const text of ["8 GB", "16 GiB", "512 MiB", "24 GB"]) expect(formatSize(parseSize(text))).toBe(text);
  });
});
