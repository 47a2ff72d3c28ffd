import { existsSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import { dirname, join } from "node:path";
import { tempDir, testPython } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { collectEnvironments, ensureEnvironment, environmentKey, packageSourceArgs } from "./python-env.ts";

// What uv is told of the owner's package sources (jobs.package_index, jobs.find_links).
describe("package sources", () => {
  it("PyPI unless the owner names an index; none: only the find-links", () => {
    expect(packageSourceArgs()).toEqual([]);
    expect(packageSourceArgs({ index: "http://10.0.0.1:8000/simple" })).toEqual([
      "--default-index",
      "http://10.0.0.1:8000/simple",
    ]);
    expect(packageSourceArgs({ index: "none", findLinks: ["/srv/wheels", "http://10.0.0.1/w/"] })).toEqual([
      "--no-index",
      "--find-links",
      "/srv/wheels",
      "--find-links",
      "http://10.0.0.1/w/",
    ]);
  });
});

describe("collecting environments", () => {
  // Real environments built by uv, offline: each a requirements file with nothing but a comment.
  const spec = (name: string) => ({ requirements: `# ${name}\n` });
  const build = (root: string, name: string) =>
    ensureEnvironment(spec(name), {
      root,
      path: `${dirname(testPython())}:${process.env.PATH}`,
      packages: { index: "none" },
    });
  const usedAt = (root: string, name: string, seconds: number) =>
    utimesSync(join(root, environmentKey(spec(name))), seconds, seconds);
  const kept = (root: string) => readdirSync(root).filter((n) => /^[0-9a-f]{32}$/.test(n));

  it("the least recently used go first, until the rest fit under the cap; a job reuses one and it is used again", async () => {
    const root = tempDir("b9-envs-");
    for (const name of ["a", "b", "c"]) await build(root, name);
    usedAt(root, "a", 1_000);
    usedAt(root, "b", 3_000);
    usedAt(root, "c", 2_000);
    // Reused, "a" is the one used last now.
    expect((await build(root, "a")).reused).toBe(true);
    // Under the cap, nothing goes.
    expect(await collectEnvironments(root, Number.MAX_SAFE_INTEGER, () => false)).toEqual([]);
    const one = readFileSync(join(root, environmentKey(spec("c")), ".b9-size"), "utf8");
    // Room for two of the three (they are alike in size): the least recently used, "c", goes.
    expect(await collectEnvironments(root, 2.5 * Number(one), () => false)).toEqual([
      environmentKey(spec("c")),
    ]);
    expect(kept(root).sort()).toEqual([environmentKey(spec("a")), environmentKey(spec("b"))].sort());
    expect(readdirSync(root).some((n) => n.startsWith(".removing-"))).toBe(false);
    // Gone, it is built again when a job asks for it.
    expect((await build(root, "c")).reused).toBe(false);
  }, 120_000);

  it("never one a job holds, even over the cap", async () => {
    const root = tempDir("b9-envs-");
    for (const name of ["a", "b", "c"]) await build(root, name);
    const held = environmentKey(spec("b"));
    const removed = await collectEnvironments(root, 0, (key) => key === held);
    expect(removed.sort()).toEqual([environmentKey(spec("a")), environmentKey(spec("c"))].sort());
    expect(kept(root)).toEqual([held]);
    expect(existsSync(join(root, held, "bin", "python"))).toBe(true);
  }, 120_000);
});
