import { describe, expect, it } from "vitest";
import { LineSplitter } from "./ndjson.ts";

describe("LineSplitter", () => {
  it("keeps a character whose bytes arrive in two chunks whole", () => {
    const bytes = Buffer.from('{"model":"café-7b"}\n', "utf8");
    const cut = bytes.indexOf(0xc3) + 1; // between the two bytes of "é"
    const lines = new LineSplitter();
    expect(lines.push(bytes.subarray(0, cut))).toEqual([]);
    expect(lines.push(bytes.subarray(cut))).toEqual(['{"model":"café-7b"}']);
  });

  it("skips blank lines and refuses a line that never ends", () => {
    const lines = new LineSplitter(16);
    expect(lines.push("a\n\n  \nb\n")).toEqual(["a", "b"]);
    expect(() => lines.push("x".repeat(17))).toThrow(/longer than 16/);
  });
});
