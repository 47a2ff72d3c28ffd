import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/** What serves a request given no dispatcher in a fresh process that imported node:http first. */
function globalDispatcherAfter(install: boolean): string {
  const script = `
import "node:http";
${install ? `import { installPinnedUndici } from ${JSON.stringify(join(import.meta.dirname, "undici-global.ts"))};\ninstallPinnedUndici();` : ""}
const undici = await import("undici");
console.log(undici.getGlobalDispatcher() instanceof undici.Agent ? "pinned" : "node's own");
`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: import.meta.dirname,
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(run.stderr).toBe("");
  return run.stdout.trim();
}

describe("the undici that serves requests made without a dispatcher", () => {
  it("is Node's bundled copy once node:http is imported, and the pinned one after installPinnedUndici()", () => {
    expect(globalDispatcherAfter(false)).toBe("node's own");
    expect(globalDispatcherAfter(true)).toBe("pinned");
  });
});
