import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/** Run `body` in a fresh process that imported node:http first (as every program does); its stdout lines. */
function fresh(body: string): string[] {
  const script = `
import "node:http";
import { createRequire } from "node:module";
const lazy = await import(${JSON.stringify(join(import.meta.dirname, "undici-lazy.ts"))});
const undiciLoaded = () =>
  Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes("/node_modules/undici/"));
${body}
`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: import.meta.dirname,
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(run.stderr).toBe("");
  return run.stdout.trim().split("\n");
}

describe("undici loaded at its first use", () => {
  it("is not loaded until asked for, then is the pinned one, serving requests given no dispatcher", () => {
    expect(
      fresh(`
console.log(undiciLoaded(), lazy.loadedUndici() === undefined);
const dispatcher = new lazy.LazyDispatcher((u) => new u.Agent());
console.log(undiciLoaded());
const [a, b] = await Promise.all([lazy.loadUndici(), lazy.loadUndici()]);
const undici = await import("undici");
console.log(undiciLoaded(), a === b, a === lazy.loadedUndici(), typeof a.fetch, a.Agent === undici.Agent);
console.log(undici.getGlobalDispatcher() instanceof undici.Agent ? "pinned" : "node's own");
const [d1, d2] = await Promise.all([dispatcher.get(), dispatcher.get()]);
console.log(d1 === d2, d1 instanceof undici.Agent);
`),
    ).toEqual(["false true", "false", "true true true function true", "pinned", "true true"]);
  });
});
