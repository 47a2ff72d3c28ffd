import { expect, it } from "vitest";
import { powerOfTwoSlices } from "./chunks.ts";

it("slices a batch into powers of two, largest first, never above the bound, every row once", () => {
  const sizes = (n: number, max: number) =>
    [...powerOfTwoSlices([...Array(n).keys()], max)].map((s) => s.length);
  expect(sizes(37, 512)).toEqual([32, 4, 1]);
  expect(sizes(1, 512)).toEqual([1]);
  expect(sizes(0, 512)).toEqual([]);
  expect(sizes(1200, 512)).toEqual([512, 512, 128, 32, 16]);
  expect([...powerOfTwoSlices([..."abcdefg"], 4)].flat().join("")).toBe("abcdefg");
});
