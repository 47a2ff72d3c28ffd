import { describe, expect, it } from "vitest";
import { createExecFileRunner } from "./runner.ts";

// These start real processes (this Node binary) so the execFile wiring itself is exercised.
const node = process.execPath;

describe("execFile runner", () => {
  it("returns stdout of a tool that succeeds, passing arguments without a shell", async () => {
    const run = createExecFileRunner();
    const result = await run(node, [
      "-e",
      "process.stdout.write(process.argv[1])",
      "$HOME; echo not-a-shell",
    ]);
    expect(result).toEqual({ stdout: "$HOME; echo not-a-shell" });
  });

  it("returns null for a tool that is not installed", async () => {
    expect(await createExecFileRunner()("b9-no-such-tool-here", ["--version"])).toBeNull();
  });

  it("returns null for a tool that fails without output", async () => {
    expect(await createExecFileRunner()(node, ["-e", "process.exit(3)"])).toBeNull();
  });

  it("keeps the output of a tool that exits non-zero after printing (rocm-smi does)", async () => {
    const result = await createExecFileRunner()(node, ["-e", "process.stdout.write('{}'); process.exit(2)"]);
    expect(result).toEqual({ stdout: "{}" });
  });

  it("returns null for a tool that hangs past the timeout", async () => {
    const started = Date.now();
    const result = await createExecFileRunner({ timeoutMs: 300 })(node, [
      "-e",
      "console.log('x'); setInterval(() => {}, 1000)",
    ]);
    expect(result).toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
