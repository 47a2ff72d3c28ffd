import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function run(work: boolean): { largest: number; after: number } {
  const child = spawnSync(
    process.execPath,
    [join(import.meta.dirname, "testing", "young-generation.ts"), work ? "work" : "wait"],
    { encoding: "utf8", timeout: 30_000 },
  );
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout) as { largest: number; after: number };
}

describe("the young generation sized by the work", () => {
  it("grows past the idle cap while work comes, and is back at the least once idle", () => {
    const busy = run(true);
    expect(busy.largest).toBeGreaterThanOrEqual(24);
    expect(busy.after).toBeLessThanOrEqual(4);
  });

  it("without work, stays within one growth step of the idle cap", () => {
    // V8 doubles it once before the collection that reports it is seen (4 MB cap: up to 16 MB).
    expect(run(false).largest).toBeLessThanOrEqual(16);
  });
});
