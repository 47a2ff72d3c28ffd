import { spawnSync } from "node:child_process";
import { cp, rm } from "node:fs/promises";
import { tempDir } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { ensureQuantizeTool, findLlamaSource } from "./llama-tools.ts";

/** What the dynamic loader says when a binary's libraries are not where it was linked against them. */
const runs = (binary: string) => {
  const run = spawnSync(binary, [], { encoding: "utf8" });
  return run.stdout + run.stderr;
};

describe("llama-quantize from node-llama-cpp's bundle", () => {
  it("is built again when the engine's libraries are in another folder (a reinstall moved them)", async () => {
    const source = await findLlamaSource();
    expect(source.release).toMatch(/^v\S+$/);
    expect(source.commit).toMatch(/^[0-9a-f]{40}$/);
    const moved = tempDir("b9-llama-bins-");
    await cp(source.binsDir, moved, { recursive: true });
    const toolsDir = tempDir("b9-llama-tools-");
    const before = await ensureQuantizeTool({ ...source, binsDir: moved }, { toolsDir });
    expect(runs(before)).toMatch(/usage:/);
    await rm(moved, { recursive: true });
    const after = await ensureQuantizeTool(source, { toolsDir });
    const said = runs(after);
    expect(said).not.toMatch(/error while loading shared libraries/);
    expect(said).toMatch(/usage:/);
  }, 120_000);
});
